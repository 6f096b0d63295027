"""Report: radio maps, pictures and the one-page report (HTML and Markdown) of a finished run."""
