"""What every command prints to, and the exit codes of a run.

Exit codes: 0 every record ok · 2 usage error · 3 some records failed ·
4 the job stopped (auth, quota, budget, outage, disk; state saved, resumable) ·
130 interrupted (Ctrl-C) · 143 terminated (SIGTERM); both save state too.
Errors exit with their class's ``exit_code`` (usage 2, stopped 4; ``_exceptions.py``).
"""

from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 3, 130, 143

# soft_wrap: a message is one line even when stderr is a pipe or a log file, where
# rich would otherwise wrap it at 80 columns.
err = Console(stderr=True, soft_wrap=True)
