"""The one exception type for mistakes a user can fix (bad params, missing or malformed files).

Stages and the ``rnnlm`` command catch it and print its message on one line with a non-zero exit,
instead of a traceback: a traceback is for bugs in this package, not for a user's input.
"""

import functools
import sys


class UserError(Exception):
    """A problem with the user's input, described so that they can act on it."""


EXIT_USER_ERROR = 2


def exit_on_user_error(main):
    """Decorate a ``main()`` so that a ``UserError`` becomes one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
