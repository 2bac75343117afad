"""Install progress for the Makefile: reads pip's output on stdin (the full log goes to
.venv/install.log) and prints one line per 25 packages collected, the start of the install phase,
and a "still ..." line after 30 s without news. Stdlib only: it runs before anything is installed.

pip's lines it reads: "Collecting x" (from the index), "Processing /file.whl" (a wheel on disk) or
"Requirement already satisfied" at the start of a line is one package; "Installing collected
packages: a, b, ..." starts the install; "Successfully installed a-1 b-2 ..." ends it.
"""

import re
import sys
import threading
import time


class Progress:
    """The current phase and when anything was last said, shared with the heartbeat thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase, self.started = "resolving and downloading", time.monotonic()
        self.last = self.started

    def say(self, text: str, indent: str = "      ") -> None:
        with self.lock:
            print(indent + text, flush=True)
            self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def heartbeat(self) -> None:
        while True:
            time.sleep(1)
            if time.monotonic() - self.last >= 30:
                self.say(f"still {self.phase} ({self.elapsed():.0f} s) ...")


def packages(n: int) -> str:
    return f"{n} package{'' if n == 1 else 's'}"


def main(venv: str) -> None:
    progress = Progress()
    threading.Thread(target=progress.heartbeat, daemon=True).start()
    collected = 0
    for line in sys.stdin:
        if re.match(r"(Collecting|Processing|Requirement already satisfied:) ", line):
            collected += 1
            if collected % 25 == 0:
                progress.say(f"{packages(collected)} collected ...")
        elif line.startswith("Installing collected packages: "):
            names = [name.strip() for name in line.split(":", 1)[1].split(",")]
            progress.say(f"{packages(collected)} collected in {progress.elapsed():.0f} s")
            note = " (the longest phase: torch alone unpacks to 750 MB)" if "torch" in names else ""
            progress.phase, progress.started = "installing", time.monotonic()
            progress.say(f"[3/4] installing {packages(len(names))} into {venv}{note} ...",
                         indent="")
        elif line.startswith("Successfully installed "):
            installed = len(line.split()) - 2
            progress.say(f"{packages(installed)} installed in {progress.elapsed():.0f} s")
        elif line.startswith("ERROR: "):
            progress.say(line.rstrip())


if __name__ == "__main__":
    main(sys.argv[1])
