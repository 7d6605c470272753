"""Decoding: L2–L4 headers for whole batches (``headers``) and application metadata
for the few packets that carry it (one module per protocol).

Promise: decoding never raises on input. An application decoder's ``parse`` returns its
info record, ``None`` when the payload is not its protocol, or raises ``Malformed`` with a
short fixed reason; the dispatcher counts the reason. Nothing from a payload is kept beyond
the fields the decoder names, and no reason string carries payload bytes.
"""


class Malformed(ValueError):
    """A payload of a known protocol that is truncated or broken.

    ``reason`` is a short fixed identifier such as ``"dhcp_truncated_options"``: it becomes a
    label value of ``santinel_decode_errors_total`` and so must never hold payload content.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
