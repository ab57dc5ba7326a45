"""What tests and benchmarks share and the product never imports: a throwaway PostgreSQL server
(:mod:`testkit.postgres`), the bot as its own OS process against a fake Discord (:mod:`testkit.process`),
odd picture files (:mod:`testkit.pictures`).
Not installed with the product: run from the repository root (pytest and ``python -m bench…`` both do)."""
