# Copyright: Contributors to loopbreaker.notion
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a file in a user's tree as root, on POSIX: the entry itself, never through a link.

Private to this collection. Shared by the local host's readers (text, bytes, log tails).
"""
from __future__ import annotations

import errno
import os
import stat

from ansible_collections.loopbreaker.notion.plugins.module_utils._batch import BridgeOperationError

# O_NONBLOCK: a FIFO a user put in place of a file must not hang the run.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(parent_fd: int, name: str) -> tuple[int, os.stat_result]:
    """(descriptor, status) of the regular file name below parent_fd; the caller closes the descriptor.

    A symbolic link, FIFO, device or directory there raises BridgeOperationError.
    """
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=parent_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BridgeOperationError('it is a symbolic link; not followed') from None
        raise
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise BridgeOperationError('it is not a regular file')
    return fd, status
