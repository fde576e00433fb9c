"""A view of the store that remembers its answers, for the replayer: while one transaction
replays, the state it reads does not change, so each question is asked of the store once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zgos.kv.node.store import StoreAt

Answers = dict[tuple[str, tuple[object, ...]], object]
NOT_ASKED = object()


def _remembered(name: str, *, shared: bool) -> Callable[..., Any]:
    """``KvView`` question ``name``, asked of the store once per list of arguments; ``shared``
    answers (access control) go where they may outlive one transaction."""

    def ask(self: MemoView, *args: object) -> Any:
        answers = self.acl_answers if shared else self.answers
        answer = answers.get((name, args), NOT_ASKED)
        if answer is NOT_ASKED:
            answer = answers[(name, args)] = getattr(self.view, name)(*args)
        return answer

    ask.__name__ = name
    return ask


class MemoView:
    """A ``KvView`` over ``view`` that remembers its answers. Access-control answers may be
    shared beyond one transaction by a caller that drops them whenever a commit changes
    access control (``Replayer``)."""

    def __init__(self, view: StoreAt, acl_answers: Answers | None = None) -> None:
        self.view = view
        self.answers: Answers = {}
        self.acl_answers = self.answers if acl_answers is None else acl_answers

    latest_version = _remembered("latest_version", shared=False)
    is_new_stream = _remembered("is_new_stream", shared=True)
    is_admin = _remembered("is_admin", shared=True)
    is_special_key = _remembered("is_special_key", shared=True)
    is_writer_of_stream = _remembered("is_writer_of_stream", shared=True)
    is_writer_of_key = _remembered("is_writer_of_key", shared=True)
    is_special_writer_of_any_key = _remembered("is_special_writer_of_any_key", shared=True)
