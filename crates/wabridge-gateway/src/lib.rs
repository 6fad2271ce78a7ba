//! The gateway: being built (issues "Gateway 1" to "Gateway 4").
