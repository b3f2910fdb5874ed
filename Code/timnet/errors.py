"""One exception type for problems the user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """Bad input or configuration: printed as a single line, exit code 2."""

    exit_code = 2
