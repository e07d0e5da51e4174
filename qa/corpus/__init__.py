"""Stage 1, the corpus: a folder of .txt, .md, .html and .pdf files in, articles out (the text every
citation's offsets index, with title, date, author, site and pages), then whole-sentence passages
that keep their offsets. Files that cannot be read come out as the reason why."""
