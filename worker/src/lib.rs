//! The worker role: distributed query execution and result buffers. Not built yet.
