"""The applications a terminal hosts: retail tap reader, transit gate (with its back
office) and parking gate, on the kernel (:mod:`terminal.kernel`) and the issuer client
(:mod:`hostlink`)."""
