"""A private Dovecot 2.3 IMAP server on a free loopback port, for integration tests.

``Dovecot.start()`` writes a configuration into a fresh folder directly in the system temporary
directory (the auth process runs as ``dovecot`` and must traverse it), starts ``dovecot -F`` in its
own session and waits for the greeting. Any user name logs in with ``PASSWORD`` (static passdb);
mail is delivered with ``doveadm save`` (a Maildir drop while the server is down) or IMAP APPEND;
flags, UIDs and UIDVALIDITY are read or changed with ``doveadm`` behind the server's back.
``pytest.skip`` is raised when Dovecot is not installed or we cannot switch to its mail user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

NOBODY = 65534
PASSWORD = "secret-Pa55"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
mail_location = maildir:{dir}/mail/%u/Maildir
mail_max_userip_connections = 50
mail_fsync = never
verbose_proctitle = yes
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def _binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """One private server; ``host``/``port`` to connect, ``PASSWORD`` for every user."""

    def __init__(self) -> None:
        self.binary, self.doveadm_bin = _binary("dovecot"), _binary("doveadm")
        if not (self.binary and self.doveadm_bin):
            pytest.skip("dovecot-imapd is not installed")
        if os.geteuid() != 0:
            pytest.skip("the private Dovecot switches to uid 65534 and needs root")
        self.dir = Path(tempfile.mkdtemp(prefix="postdesk-dovecot-"))
        self.dir.chmod(0o755)
        self.host, self.port = "127.0.0.1", _free_port()
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(CONFIG.format(dir=self.dir, port=self.port, uid=NOBODY,
                                           password=PASSWORD))
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", NOBODY, NOBODY)
        self.process: subprocess.Popen | None = None

    def start(self) -> Dovecot:
        (self.dir / "state" / "instances.lock").unlink(missing_ok=True)  # else a 10 s stall
        self.process = subprocess.Popen([self.binary, "-F", "-c", str(self.conf)],
                                        start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not greet in time")

    def stop(self) -> None:
        """Stop the master and every child (imap processes would hold connections ~10 s)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill_sessions(self, user: str) -> int:
        """SIGKILL the user's imap processes: their connections end without a BYE, as when a
        NAT or firewall drops them. Returns how many were killed."""
        pids = [pid for pid, title in self._processes()
                if title.startswith("dovecot/imap ") and f"[{user} " in title]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return len(pids)

    def _processes(self):
        """(pid, title) of the server's processes, read from /proc (no procps needed)."""
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.getpgid(int(entry.name)) == self.process.pid:
                    title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    yield int(entry.name), title.decode(errors="replace").strip()
            except OSError:  # the process ended meanwhile
                continue

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, user: str) -> str:
        """Every user name logs in with ``PASSWORD`` (a static passdb: a passwd-file edited
        within the same second is not re-read, and each failed login costs 2 s)."""
        return user

    def doveadm(self, command: str, *args: str, user: str, stdin: bytes | None = None) -> str:
        """Run ``doveadm COMMAND -u USER ARGS`` (COMMAND may be two words: "mailbox list")."""
        command = [self.doveadm_bin, "-c", str(self.conf), *command.split(), "-u", user, *args]
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def create_folder(self, user: str, folder: str) -> None:
        if folder.upper() != "INBOX" and folder not in self.folders(user):
            self.doveadm("mailbox create", folder, user=user)

    def folders(self, user: str) -> list[str]:
        return self.doveadm("mailbox list", user=user).split()

    def deliver(self, user: str, folder: str, raw: bytes) -> None:
        """Deliver one mail with ``doveadm save``; while the server is down (doveadm needs its
        auth service), drop it into the Maildir's ``new/`` as an external MDA would."""
        if self.process is None:
            self._drop_into_maildir(user, folder, raw)
            return
        self.create_folder(user, folder)
        self.doveadm("save", "-m", folder, user=user, stdin=raw)

    def _drop_into_maildir(self, user: str, folder: str, raw: bytes) -> None:
        maildir = self.dir / "mail" / user / "Maildir"
        if folder.upper() != "INBOX":
            maildir = maildir / f".{folder}"
        name = f"{time.time_ns()}.P{os.getpid()}.postdesk-test"
        (maildir / "tmp" / name).write_bytes(raw)
        os.chown(maildir / "tmp" / name, NOBODY, NOBODY)
        (maildir / "tmp" / name).rename(maildir / "new" / name)

    def append(self, user: str, folder: str, raws: list[bytes]) -> None:
        """Deliver mails in one IMAP MULTIAPPEND, as another client would."""
        from imapclient import IMAPClient

        with IMAPClient(self.host, self.port, ssl=False, timeout=10) as client:
            client.login(user, PASSWORD)
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.multiappend(folder, raws)

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        self.doveadm("mailbox update", "--uid-validity", str(value), folder, user=user)

    def fetch(self, user: str, folder: str, fields: str = "uid flags") -> list[dict[str, str]]:
        """One dict per mail in the folder, e.g. ``{"uid": "3", "flags": "\\Seen $Postdesk"}``."""
        out = self.doveadm("fetch", fields, "mailbox", folder, "ALL", user=user)
        mails = []
        for block in out.split("\f"):  # doveadm separates mails with a form feed
            pairs = (line.partition(":") for line in block.split("\n"))
            mail = {key: value.strip() for key, _, value in pairs if key in fields.split()}
            if mail:
                mails.append(mail)
        return mails

    def list_uids(self, user: str, folder: str) -> list[int]:
        return [int(mail["uid"]) for mail in self.fetch(user, folder, "uid")]

    def flags(self, user: str, folder: str) -> dict[int, set[str]]:
        return {int(mail["uid"]): set(mail.get("flags", "").split())
                for mail in self.fetch(user, folder)}
