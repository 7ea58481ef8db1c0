"""The embedded mode's broker: kombu's filesystem transport, writing each message atomically.

kombu's own `_put` writes the message file in place under an flock, while its `_get` renames
any `*.<queue>.msg` file it lists and reads it, ignoring the lock: a message read while it is
still being written is half a JSON document, and the embedded worker dies on it
("Unrecoverable error: JSONDecodeError"), so payments and ratings stop. Here a message is
written under a name the reader never picks, then renamed into place in one step.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "ridehail-filesystem"
DRAIN_TURN_S = 0.1  # the longest a drain waits: how soon a stopping worker sees its flag


class AtomicChannel(filesystem.Channel):
    # kombu declares _put twice with different parameter names; this is filesystem's.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # ".<hex>.part": the reader only takes names whose part after the first dot is
        # "<queue>.msg".
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicTransport(filesystem.Transport):
    Channel = AtomicChannel

    def drain_events(self, connection: Any, timeout: float | None = None) -> Any:  # type: ignore[override]  # virtual transports take the timeout
        """Drain in turns of at most `DRAIN_TURN_S`. Celery's blocking loop (the embedded
        worker's) drains for 2 s at a time and reads its own state only between drains, so a
        stop waited up to 2 s: every server's and every test app's shutdown paid it. Its work
        between turns is a few checks, and the transport polls every 50 ms anyway. A caller
        without a timeout still blocks until a message comes."""
        if timeout is not None and timeout > DRAIN_TURN_S:
            timeout = DRAIN_TURN_S
        return super().drain_events(connection, timeout=timeout)


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:AtomicTransport"
