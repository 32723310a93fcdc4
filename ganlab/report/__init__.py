"""Reading a sweep back from its directories: run records, comparison tables and figures."""
