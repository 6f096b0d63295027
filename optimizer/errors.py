"""User-facing errors: one line, naming the field and the fix; the CLI turns them into exit codes."""

from optimizer.constants import EXIT_FAILURE, EXIT_USAGE


class ReflectoptError(Exception):
    """An error whose message is shown to the user as is (no traceback)."""

    exit_code = EXIT_FAILURE


class ConfigError(ReflectoptError):
    """Bad experiment file or bad command-line value. `problems` holds one line per problem."""

    exit_code = EXIT_USAGE

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StorageError(ReflectoptError):
    """Object storage or file system failure (after retries), with the URI and the reason."""


class SceneError(ReflectoptError):
    """A scene that cannot be found, fetched, verified or loaded."""
