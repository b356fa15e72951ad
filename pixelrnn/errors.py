"""The base class of every failure caused by what the user asked for.

Such a failure is reported by the command-line layer (`cli.py`) as one line,
`Error: <message>`, and exit status `exit_status`, without a traceback. Each module
keeps its own subclass (`defaults.ConfigError`, `data.DataError`, ...), which also
derives from the built-in exception it is closest to.
"""


class UserError(Exception):
  """Bad input or a request the project cannot carry out, stated in one line."""

  exit_status = 2
