"""Stage 6, the interface: the `qa` command (typer) over `qa.api.QA`, its rich views and JSON,
the chat session, the question file, and the local HTTP API. Nothing below imports it."""
