//! The Cloud API SDK: being built (issue "Foundation 2").
