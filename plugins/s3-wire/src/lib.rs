//! The wire format of S3 for the `store-s3` driver, kept free of WASI imports so that
//! `scripts/test` runs its tests natively: AWS Signature V4 (`sigv4`) and the bits of XML
//! S3 answers with (`xml`).

pub mod sigv4;
pub mod xml;
