"""bsrwatch: a live terminal monitor for bsr (and DRBD 9) resources.

Layers, every import pointing down:

* :mod:`bsrwatch.sources` — where events come from (netlink, a command, a file);
* :mod:`bsrwatch.store` — :class:`bsr.model.State` plus rates, logs and the
  derived view model (:mod:`bsrwatch.view`), with :mod:`bsrwatch.severity`;
* :mod:`bsrwatch.actions` — bsradm commands, run asynchronously with a timeout;
* :mod:`bsrwatch.app`, ``screens/`` and ``widgets/`` — the Textual UI.
"""
