"""Reports: the data a report shows (sections, spend, window), its templates and charts, the terminal/JSON/
Markdown/HTML renderings of a sweep, and the weekly digest."""
