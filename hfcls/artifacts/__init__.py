"""Model files and the run folder: the one reader (`weights`; `describe`, `loading`, `finetune` on it), the
work dir (`run_dir`), its checkpoints (`checkpoint`, `resume`), and the writers (`export`, `publish`, `hub`)."""
