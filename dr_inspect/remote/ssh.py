"""Remote hosts reached with the OpenSSH client: who they are, and the ssh argv that runs a command.

Everything goes through the user's own `ssh` (their keys, agent and ssh config; host keys verified
as ssh does: StrictHostKeyChecking is never turned off here) with BatchMode=yes, so ssh fails at
once instead of asking for a password or a host-key confirmation. The remote command is one
string the remote shell parses: every word is quoted with shlex.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from dr_inspect.errors import InputError, MissingToolError

# Options every connection gets. ServerAlive*: a connection that went silent (cable cut, host
# down) ends ssh after ~15 s instead of TCP's hours, so a capture notices it and stops.
BASE_OPTIONS = ("BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5",
                "ServerAliveCountMax=3")
_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*[= ]\S.*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")


@dataclass(frozen=True)
class SshHost:
    """One remote host: a name (names its points and snapshot) and how ssh reaches it."""

    name: str
    host: str                                  # host name, address or ssh config alias
    user: str | None = None
    port: int | None = None
    config: Path | None = None                 # ssh -F FILE (default: ~/.ssh/config)
    options: tuple[str, ...] = field(default=())   # extra `-o Key=Value`
    role: str | None = None                    # director | realserver | client, when known

    @property
    def target(self) -> str:
        """[user@]host[:port], as the manifest records it."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        return f"{user}{host}" + (f":{self.port}" if self.port else "")


def check_host_name(name: str, where: str = "--host") -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise InputError(f"{where} {name!r}: a host name is letters, digits and . _ - + @ "
                         "(it names the host's points and snapshot)")
    return name


def parse_target(text: str, where: str) -> tuple[str | None, str, int | None]:
    """'[user@]host[:port]' (an IPv6 address in brackets with a port) -> (user, host, port)."""
    user, _, rest = text.rpartition("@") if "@" in text else (None, "", text)
    port: int | None = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise InputError(f"{where} {text!r}: expected [user@]host[:port] ([v6-address]:port)")
        port_text = tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    else:
        host, port_text = rest, None          # a host name, or a bare IPv6 address without port
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InputError(f"{where} {text!r}: port {port_text!r} is not in 1..65535")
        port = int(port_text)
    if not host or host.startswith("-") or not _HOST.match(host):
        raise InputError(f"{where} {text!r}: {host!r} is not a host name or address")
    if user is not None and not _USER.match(user):
        raise InputError(f"{where} {text!r}: {user!r} is not a user name")
    return user, host, port


def parse_host_spec(spec: str, *, config: Path | None = None,
                    options: tuple[str, ...] = ()) -> SshHost:
    """`NAME=[user@]host[:port]` (the --host option) -> SshHost."""
    name, sep, target = spec.partition("=")
    if not sep or not name or not target:
        raise InputError(f"--host {spec!r}: expected NAME=[user@]host[:port]")
    check_host_name(name)
    user, host, port = parse_target(target, f"--host {name}=")
    return SshHost(name, host, user, port, config, check_options(options, f"--host {name}"))


def check_options(options: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    for option in options:
        if not isinstance(option, str) or not _OPTION.match(option) or "\n" in option:
            raise InputError(f"{where}: ssh option {option!r}: expected Key=Value (ssh -o)")
    return tuple(options)


def find_ssh() -> str:
    path = shutil.which("ssh")
    if path is None:
        raise MissingToolError("ssh", "openssh-client", "remote hosts are reached with ssh")
    return path


def ssh_argv(host: SshHost, remote: list[str], *, ssh: str = "ssh") -> list[str]:
    """The argv that runs `remote` (a command's words) on `host`."""
    # -T: no pty (a pty would turn the pcap stream's \n into \r\n and mix stderr into it)
    return _options(host, ssh) + ["-T", "--", host.host, shlex.join(remote)]


def _options(host: SshHost, ssh: str) -> list[str]:
    argv = [ssh]
    if host.config is not None:
        argv += ["-F", str(host.config)]
    for option in (*host.options, *BASE_OPTIONS):     # ssh takes an option's first value
        argv += ["-o", option]
    if host.user:
        argv += ["-l", host.user]
    if host.port:
        argv += ["-p", str(host.port)]
    return argv


@contextmanager
def multiplexed(host: SshHost, timeout: float = 30.0) -> Iterator[SshHost]:
    """`host` with its commands sharing one ssh connection (a ControlMaster this process starts
    and ends): a snapshot runs a dozen commands, each would otherwise pay a handshake. When the
    master cannot connect, `host` itself is given (each command then reports ssh's reason)."""
    folder = Path(tempfile.mkdtemp(prefix="dri-ssh-"))      # mode 0700: the socket is ours
    sock = folder / "master"
    master = subprocess.Popen(
        _options(host, find_ssh()) + ["-o", "ControlMaster=yes", "-o", f"ControlPath={sock}",
                                      "-o", "ControlPersist=no", "-N", "-T", "--", host.host],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not sock.exists() and master.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if sock.exists():
            yield replace(host, options=host.options + ("ControlMaster=no", f"ControlPath={sock}"))
        else:
            yield host
    finally:
        end_group(master)
        shutil.rmtree(folder, ignore_errors=True)


def end_group(proc: subprocess.Popen, grace: float = 3.0) -> int:
    """End an ssh started in its own session, with what it started (a ProxyCommand is in its
    process group, and outlives an ssh killed before it could end it): SIGTERM, then SIGKILL."""
    signalled = False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            signalled = True
        except ProcessLookupError:
            break
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            continue
    if signalled:
        try:                           # what is left of the group (a ProxyCommand): the group
            os.killpg(proc.pid, signal.SIGKILL)   # id stays taken while it has a member
        except (ProcessLookupError, PermissionError):
            pass
    return proc.wait()


SSH_FAILED = 255          # ssh's own exit status: connection, authentication or host key failure


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def run_remote(host: SshHost, remote: list[str], *, timeout: float = 30.0,
               input: str | None = None) -> subprocess.CompletedProcess:
    """Run `remote` on `host` and wait; its CompletedProcess (text). InputError-free: ssh's own
    failures come back as exit status 255 with ssh's message on stderr."""
    argv = ssh_argv(host, remote, ssh=find_ssh())
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(proc)
        proc.communicate()
        return subprocess.CompletedProcess(argv, SSH_FAILED, "",
                                           f"no answer from {host.target} within {timeout:g} s")
    except BaseException:
        end_group(proc)                   # Ctrl-C: ssh and a ProxyCommand end with us
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def ssh_failure(host: SshHost, proc: subprocess.CompletedProcess) -> str:
    """One line on why ssh to `host` failed (its own message: refused, host key, auth)."""
    return f"ssh {host.target} ({host.name}): {first_line(proc.stderr or '') or 'failed'}"
