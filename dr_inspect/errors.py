"""Domain exceptions. The CLI turns every DrInspectError into a one-line message and exit code 2."""

from __future__ import annotations


class DrInspectError(Exception):
    """Base of every error a user can cause with bad input, usage or environment."""


class CaptureError(DrInspectError):
    """A capture file cannot be read (further). Names the file and the byte offset."""

    def __init__(self, file: str, offset: int | None, reason: str):
        self.file = str(file)
        self.offset = offset
        self.reason = reason
        where = f"{self.file}: offset {offset}" if offset is not None else self.file
        super().__init__(f"{where}: {reason}")


class RuleFileError(DrInspectError):
    """A rule file is invalid. Names the file and, where known, the rule."""

    def __init__(self, file: str, rule: str | None, reason: str):
        self.file = str(file)
        self.rule = rule
        self.reason = reason
        where = f"{self.file}: rule {rule}" if rule else self.file
        super().__init__(f"{where}: {reason}")


class TopologyError(DrInspectError):
    """The topology cannot be learned or a pinned topology is invalid."""


class InputError(DrInspectError):
    """A path or argument given by the user is unusable (missing file, empty set, bad flag value)."""


class MissingToolError(DrInspectError):
    """An external program is missing; names the Debian package that provides it."""

    def __init__(self, tool: str, package: str, why: str = ""):
        self.tool = tool
        self.package = package
        extra = f" ({why})" if why else ""
        super().__init__(f"{tool} not found{extra}: install it with 'apt-get install {package}'")


class LabError(DrInspectError):
    """The lab cannot be brought up, used or torn down."""


class CaptureAgentError(DrInspectError):
    """Live capture cannot start or failed (bridge missing, no permission, unwritable folder)."""


class DoctorError(DrInspectError):
    """Host checks cannot run (namespace missing, unreadable snapshot)."""
