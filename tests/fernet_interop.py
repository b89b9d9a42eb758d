#!/usr/bin/python3
"""Fernet interop helper for the shell tests: the reference implementation.

Run with Debian's /usr/bin/python3 (python3-cryptography); the python3 first
on PATH may be a pyenv without it.

  fernet_interop.py genkey                  print a new key
  fernet_interop.py encrypt KEY             stdin bytes -> token + newline
  fernet_interop.py decrypt KEYS [--ttl S]  stdin token (surrounding whitespace
                                            trimmed) -> plaintext bytes;
                                            KEYS comma-separated (MultiFernet)
  fernet_interop.py rotate KEYS             stdin token -> rotated token + newline

Exit 0 on success, 1 on InvalidToken, 2 on usage errors.  Keys are given in
argv here only because this is a test helper with throwaway keys.
"""
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


def usage():
    sys.stderr.write(
        "usage: fernet_interop.py genkey | encrypt KEY | decrypt KEYS [--ttl S] | rotate KEYS\n"
    )
    return 2


def keyring(arg):
    keys = [k.strip() for k in arg.split(",") if k.strip()]
    if not keys:
        raise ValueError("no key given")
    return MultiFernet([Fernet(k) for k in keys])


def main(argv):
    if len(argv) < 1:
        return usage()
    cmd, args = argv[0], argv[1:]
    out = sys.stdout.buffer
    if cmd == "genkey" and not args:
        out.write(Fernet.generate_key() + b"\n")
        return 0
    if cmd == "encrypt" and len(args) == 1:
        out.write(Fernet(args[0]).encrypt(sys.stdin.buffer.read()) + b"\n")
        return 0
    if cmd == "decrypt" and len(args) in (1, 3):
        ttl = None
        if len(args) == 3:
            if args[1] != "--ttl":
                return usage()
            ttl = int(args[2])
        token = sys.stdin.buffer.read().strip()
        try:
            out.write(keyring(args[0]).decrypt(token, ttl=ttl))
        except InvalidToken:
            sys.stderr.write("fernet_interop.py: invalid token\n")
            return 1
        return 0
    if cmd == "rotate" and len(args) == 1:
        token = sys.stdin.buffer.read().strip()
        try:
            out.write(keyring(args[0]).rotate(token) + b"\n")
        except InvalidToken:
            sys.stderr.write("fernet_interop.py: invalid token\n")
            return 1
        return 0
    return usage()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
