"""`python -m stockgate ARGS...` is `stockgate ARGS...` (the supervisor starts children so).

The CLI module is imported under its own name here, never run as `__main__`: run as
`-m stockgate.entrypoints.cli.main` it would be imported a second time by the command modules
that import it back (cli/orders.py), half-initialised, and fail.
"""

from stockgate.entrypoints.cli.main import main

if __name__ == "__main__":
    main()
