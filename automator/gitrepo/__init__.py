"""Git I/O for the automator: the only package that imports GitPython.

:class:`GitRepo` keeps one working clone an exact copy of the remote branch
(:meth:`~GitRepo.sync`), commits exactly the files it is given as the configured author
and committer, signed with ``git.signing`` when configured (:meth:`~GitRepo.commit`, see
``_sign``), pushes with race detection
(:meth:`~GitRepo.push` raises :class:`~automator.errors.PushRejected` when someone else
pushed first; a push branch holding a person's commit is never overwritten), reads the
audit trail back (:meth:`~GitRepo.log`, and per field :meth:`~GitRepo.updates` for
rollback holds) and checks who signed
a commit before the synchronizer applies it (:meth:`~GitRepo.verify_commit` returns a
:class:`Signature` or raises :class:`~automator.errors.SignatureError`).

Credentials are never written to disk or logged: they travel per command in the
environment (see ``_env``), and every message naming a remote is redacted.
"""

from __future__ import annotations

from automator.gitrepo._log import CommitInfo
from automator.gitrepo._repo import GitRepo
from automator.gitrepo._updates import UpdateRecord
from automator.gitrepo._verify import Signature, SignatureFormat

__all__ = ["CommitInfo", "GitRepo", "Signature", "SignatureFormat", "UpdateRecord"]
