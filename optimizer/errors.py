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


class StoreCredentialsError(StorageError):
    """The store refused us for want of credentials (none found, or not accepted): an input to fix, exit 2."""

    exit_code = EXIT_USAGE


class StoreUnreachable(StorageError):
    """The object store did not answer for the whole retry budget (an outage, not a refusal): the run stops
    as failed and `reflectopt resume` continues once the store is back."""


class SceneError(ReflectoptError):
    """A scene that cannot be found, verified or loaded: a path that is not a scene, an unsafe or corrupt
    bundle, a hash that does not match. Bad input, so exit 2; a scene the store could not deliver (it did not
    answer) carries the store error's exit code 1 (see `assets.resolve_scene`)."""

    exit_code = EXIT_USAGE


class SceneHashMismatch(SceneError):
    """The scene's content hash is not the one `scene_sha256` (or `scene pull --sha256`) pins: bad input, exit 2,
    one line naming the key and both hashes."""

    exit_code = EXIT_USAGE

    def __init__(self, source: str, expected: str, got: str, where: str = ""):
        super().__init__(f"scene_sha256: {source}: hash mismatch: expected {expected} got {got}{where}; pin the "
                         f"scene's hash (scene_sha256: {got}) if it changed on purpose, else give the scene it pins")


class NumericsError(ReflectoptError):
    """A number that must be finite is not (NaN or infinity in a truth evaluation or the surrogate): the
    world, or the run, stops with this line; it is never rounded into a number."""


def caused_by_interrupt(err: BaseException) -> bool:
    """Whether a KeyboardInterrupt (Ctrl-C, or SIGTERM through `cli.run`'s handler) caused `err`: Dr.Jit raises
    RuntimeError("dr.while_loop(): encountered an exception") with the interrupt as its cause when it arrives
    inside a ray-tracing loop (seen in the robust phase)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
