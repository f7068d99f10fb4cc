"""`python -m stockgate`: the CLI, for children started with this interpreter.

Running `stockgate.entrypoints.cli.main` itself with `-m` would load that module twice (as
`__main__` and by name) and break the sub-command modules that import it back.
"""

from stockgate.entrypoints.cli.main import main

main()
