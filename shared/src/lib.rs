//! Common types of slotgate shared by the proxy, the meta group and slotctl.
