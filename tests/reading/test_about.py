import pytest

from qa.corpus.ingest import article_from_text
from qa.corpus.metadata import Extracted
from qa.reading.about import answer_about, article_meant, asks_about_article


@pytest.mark.parametrize("question, header", [
    ("Who wrote the article about the ferry strike?", "byline"),
    ("Who is the author of this article?", "byline"),
    ("Whose byline is on the story about the flood?", "byline"),
    ("When was the article on the new library published?", "dateline"),
    ("On what date was the column posted?", "dateline"),
    ("What is the publication date of the story about the harbor?", "dateline"),
    ("Who wrote the novel the film is based on?", None),  # no article named
    ("Who wrote the story of Crassus?", None),  # a story told, not a news story
    ('Who was the author of the short story "The Theologians"?', None),
    ("Who wrote American Idol: The Untold Story?", None),  # a title
    ("Who signed the article of the treaty?", None),  # an article, but not its writer
    ("What did the article say about prices?", None),
    ("According to the article, who wrote the letter to the council?", None),  # the article as a source
    ("When did the story say the bridge was written off?", None),
    ("In the article, when was the report published?", None),
    ("When did the strike begin?", None),
])
def test_questions_about_the_article_itself(question, header):
    assert asks_about_article(question) == header


def test_the_article_meant_holds_most_of_the_retrieval_score():
    source, share = article_meant(["b.txt", "a.txt", "a.txt", "c.txt"], [0.4, 0.9, 0.5, -0.2])
    assert source == "a.txt" and share == pytest.approx(1.4 / 1.8)  # a negative score counts as none


HEADER = "Ferries halted as crews strike\n\n  By Jane Roe and Omar Haddad, Mar 2, 2025\n\nCrews walked out on Monday."


def test_who_wrote_it_is_quoted_from_the_byline_with_exact_offsets():
    article = article_from_text("a.txt", HEADER)
    result = answer_about("Who wrote the article about the ferry strike?", "byline", article, 0.75, 3)
    assert result.answer == "Jane Roe and Omar Haddad" and result.confidence == 0.75 and result.header == "byline"
    citation = result.citations[0]
    assert (citation.source, HEADER[citation.start : citation.end]) == ("a.txt", result.answer)
    assert result.sentence == "By Jane Roe and Omar Haddad, Mar 2, 2025"
    assert HEADER[result.sentence_start : result.sentence_start + len(result.sentence)] == result.sentence
    assert result.readings == [None, None, None]
    dated = answer_about("When was it published?", "dateline", article, 0.75, 3)
    assert dated.answer == "Mar 2, 2025" and HEADER[dated.answer_start : dated.answer_end] == dated.answer


def test_a_header_without_a_byline_gives_no_answer_rather_than_a_name_from_the_story():
    article = article_from_text("a.txt", "Ferries halted\n\nCrews led by Jane Roe walked out on Monday, Mar 2, 2025.")
    result = answer_about("Who wrote the article about the ferries?", "byline", article, 0.9, 2)
    assert result.answer is None and result.citations == [] and result.header == "byline"


def test_a_date_field_before_the_title_is_quoted_when_the_article_prints_no_date():
    text = "date 2025-03-14\n\nHarbor approves terminal\n\nThe harbor authority on Friday approved plans."
    article = article_from_text("h.txt", text)
    result = answer_about("When was the article about the terminal published?", "dateline", article, 0.6, 1)
    assert result.answer == "2025-03-14" and text[result.answer_start : result.answer_end] == "2025-03-14"
    printed = "date 2025-03-14 Harbor approves terminal\n\nBy Ann Lee, Mar 14, 2025\n\nThe authority approved plans."
    result = answer_about("When was the article published?", "dateline", article_from_text("h.txt", printed), 0.6, 1)
    assert result.answer == "Mar 14, 2025" and result.sentence == "By Ann Lee, Mar 14, 2025"
    assert printed[result.answer_start : result.answer_end] == result.answer


def test_a_pdf_byline_is_cited_on_its_page():
    text = "Cover page\n\f" + "Floods return\nBy Ann Lee\nThe river rose again."
    found = Extracted(text, title="Floods return", page_starts=[0, 12], main_text_only=True)
    article = article_from_text("f.pdf", text, found=found)
    result = answer_about("Who wrote the article about floods?", "byline", article, 1.0, 1)
    assert result.answer == "Ann Lee" and result.citations[0].page == 2
