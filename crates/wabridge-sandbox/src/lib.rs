//! The Cloud API sandbox: being built (issue "Cloud API sandbox").
