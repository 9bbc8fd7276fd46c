"""The applications a terminal hosts: retail tap reader, transit gate (and the gate's
side of its back office's protocol: uploads and the deny list) and parking gate, on the
kernel (:mod:`terminal.kernel`) and the issuer client (:mod:`hostlink`). None of them
knows click: their commands are in :mod:`terminal.commands`."""
