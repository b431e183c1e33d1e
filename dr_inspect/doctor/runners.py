"""Where doctor's read-only commands run: this host, a network namespace, or a host over ssh.

A Runner (snapshot.Runner) takes a command's argv and returns its stdout, raising on failure;
take_snapshot reads the same host state through any of them.
"""

from __future__ import annotations

from dr_inspect.doctor.snapshot import CommandFailed, Runner, make_runner
from dr_inspect.errors import DoctorError
from dr_inspect.remote.ssh import SSH_FAILED, SshHost, first_line, run_remote, ssh_failure

_TIMEOUT_S = 30.0


def ssh_runner(host: SshHost, timeout: float = _TIMEOUT_S) -> Runner:
    """Run each command on `host` with ssh (BatchMode, the user's keys and ssh config)."""

    def run(argv: list[str]) -> str:
        proc = run_remote(host, list(argv), timeout=timeout)
        if proc.returncode == SSH_FAILED:
            raise CommandFailed(ssh_failure(host, proc))
        if proc.returncode != 0:
            err = first_line(proc.stderr or "") or first_line(proc.stdout or "")
            if proc.returncode == 127:
                err = f"{argv[0]}: not found"
            raise CommandFailed(err or f"{' '.join(argv)}: exit status {proc.returncode}")
        return proc.stdout

    return run


def runner_for(netns: str | None = None, host: SshHost | None = None) -> Runner:
    """The runner for a host over ssh, a namespace of this host, or this host."""
    if host is not None:
        return ssh_runner(host)
    return make_runner(netns)


def reachable(host: SshHost, runner: Runner) -> None:
    """DoctorError (one line, ssh's reason) when `host` cannot be reached: better than every item
    of its snapshot failing with the same reason, each after ssh's connect timeout."""
    try:
        runner(["true"])
    except CommandFailed as exc:
        raise DoctorError(str(exc)) from None
