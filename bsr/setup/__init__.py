"""bsrsetup, the low-level administration tool of bsr (like drbdsetup).

Modules: :mod:`.args` (command-line grammar), :mod:`.commands` (commands
that change kernel objects), :mod:`.events` (the ``events2`` loop),
:mod:`.status`, :mod:`.show`, :mod:`.cli` (entry point, exit codes).
"""
