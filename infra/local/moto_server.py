"""Starts moto on 127.0.0.1 and a free port, for the flexbridge local stack and tests.

Same as `moto_server -H 127.0.0.1 -p 0` (prints ` * Running on http://127.0.0.1:PORT` on
stderr), plus one thing the plain server cannot do: it exits when the process that started
it goes away. Test binaries keep their moto in a static that is never dropped, so without
this every `cargo test` would leave servers behind.
"""

import os
import sys
import time

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def main() -> None:
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
