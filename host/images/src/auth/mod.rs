//! Who asks and what they may do: the caller's [`identity::Identity`], Keystone token
//! validation ([`keystone`]) and Glance's policy rules ([`policy`]).

pub mod identity;
pub mod keystone;
pub mod policy;
