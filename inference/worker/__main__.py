"""`python -m inference.worker`: configure from the environment, run until released.

Exit codes: 0 released (drained, or idle long enough with IRONBOWL_EXIT_WHEN_IDLE_S), 1 the
control plane refused the token or the registration, 2 the configuration is invalid.
SIGTERM or SIGINT drains (a second one ends the grace period at once).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from types import FrameType

from inference.worker.config import EXIT_FILE, ConfigError, load_config
from inference.worker.runner import Worker

EXIT_CONFIG = 2


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            logging.getLogger("inference.worker").error("invalid configuration: %s", problem)
        return EXIT_CONFIG

    worker = Worker(config)

    def drain(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("inference.worker").info("%s received", signal.Signals(signum).name)
        worker.request_drain()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    code = worker.run()
    if config.state_dir is not None:
        # For a supervisor that is not this process's parent (an orchestrator that adopted it
        # after a restart) and so cannot learn the exit status from the kernel.
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
            (config.state_dir / EXIT_FILE).write_text(json.dumps({"code": code}))
        except OSError as exc:
            logging.getLogger("inference.worker").warning("could not record the exit: %s", exc)
    return code


if __name__ == "__main__":
    sys.exit(main())
