//! Python bindings for File Orbit. Empty until the bindings issue: it will hold only PyO3
//! glue over `file_orbit_core`, never logic of its own.
