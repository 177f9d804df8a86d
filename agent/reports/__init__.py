"""Reports: the terminal, JSON and Markdown renderings of a sweep, the HTML audit, the weekly digest."""
