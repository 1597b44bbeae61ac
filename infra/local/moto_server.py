"""Starts moto on 127.0.0.1 and a free port, for the flexbridge local stack and tests.

Same as `moto_server -H 127.0.0.1 -p 0` (prints ` * Running on http://127.0.0.1:PORT` on
stderr), plus one thing the plain server cannot do: it exits when the process that started
it goes away. Test binaries keep their moto in a static that is never dropped, so without
this every `cargo test` would leave servers behind. And one speed fix to moto's SQS that
changes no behaviour (`_retained`), and two to DynamoDB's transactions
(`_transact_write_items`, `_one_at_a_time`).
"""

import copy
import functools
import os
import sys
import threading
import time

import moto.dynamodb.models as dynamodb_models
from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.sqs.models import SQSBackend


def _retained(self: SQSBackend, queue_name: str, message) -> bool:
    """moto's own check computes every queue attribute, counting the queue's messages, for
    each message it hands out: a queue with a backlog made every receive slower than the
    last. Same rule, from the one attribute it needs."""
    retention = self.get_queue(queue_name).message_retention_period
    return retention + message.sent_timestamp / 1000 > unix_time()


class _TablesNotCopied:
    """`copy` as moto's DynamoDB models see it, except that a whole table is not copied (see
    `_transact_write_items`)."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items(self: DynamoDBBackend, transact_items):
    """moto keeps a deep copy of every table a transaction touches, to roll back: each
    transaction cost as much as the tables were big, and a long run slowed to a crawl. Same
    all-or-nothing rule: the items the transaction names are saved before, and put back (or
    deleted, if they did not exist) when moto refuses the transaction."""
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        name = op.get("TableName")
        table = self.tables.get(name) if name else None
        if table is None:
            continue
        if "Key" in op:
            key = op["Key"]
        elif "Item" in op and table.hash_key_attr in op["Item"]:
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                if table.range_key_attr not in op["Item"]:
                    continue
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            continue
        try:
            current = self.get_item(name, key)
        except Exception:  # an invalid key: moto refuses the transaction itself
            continue
        saved.append((name, key, current.to_json()["Attributes"] if current else None))
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        for name, key, attrs in reversed(saved):
            if attrs is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, attrs)
        raise


_ITEMS_LOCK = threading.RLock()

# Every DynamoDB call that reads or writes items (the batch and transactional reads go through
# `get_item`, the batch writes through `put_item` and `delete_item`).
_ITEM_CALLS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)


def _one_at_a_time(call):
    """moto's server answers on several threads, and moto applies a transaction item by item,
    then puts back what it saved when one condition fails: a write that landed on one of those
    items in between was undone (a reservation's `ADD reserved` lost while the SDK's resend of
    a transaction whose answer was lost was being refused; the chaos run then sold units the
    warehouse did not have), and a read in between saw writes about to be undone. In DynamoDB
    a transaction is all or nothing for every other call too: so here, one item call at a
    time."""

    @functools.wraps(call)
    def locked(*args, **kwargs):
        with _ITEMS_LOCK:
            return call(*args, **kwargs)

    return locked


def _patch(owner, name: str, value) -> None:
    # The names patched are moto's internals (pinned in requirements.txt): a moto that renamed
    # one must stop here, not run unpatched, or slow, without a word.
    if not hasattr(owner, name):
        sys.exit(f"moto_server: this moto has no {owner.__name__}.{name}; re-check the patches")
    setattr(owner, name, value)


def main() -> None:
    _patch(SQSBackend, "is_message_valid_based_on_retention_period", _retained)
    _patch(dynamodb_models, "copy", _TablesNotCopied())
    _patch(DynamoDBBackend, "transact_write_items", _transact_write_items)
    for name in _ITEM_CALLS:
        _patch(DynamoDBBackend, name, _one_at_a_time(getattr(DynamoDBBackend, name)))
    parent = os.getppid()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f" * Running on http://{host}:{port}", file=sys.stderr, flush=True)
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
