"""Model files: the one reader (`weights`), and the writers (`export`, `publish`, `hub`)."""
