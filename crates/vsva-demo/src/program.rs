//! The userspace program (written next).
