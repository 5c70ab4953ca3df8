"""Signaling error types; each carries a short machine code the client can show or act on."""


class SignalingError(Exception):
    """A client request was refused; `code` is sent back as `{"type": "error", "code": ...}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenError(SignalingError):
    """A room token is missing, malformed, expired or signed with another secret."""

    def __init__(self, message: str) -> None:
        super().__init__("bad-token", message)
