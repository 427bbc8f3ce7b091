//! The policy language (oslo.policy's check strings) and policy files (JSON or flat YAML):
//! no panic however deep or long, a parsed rule renders back to itself, and any policy the
//! loader accepts evaluates in bounded time.

use glass_images::Identity;
use glass_images::auth::policy::{self, Policy, Target as PolicyTarget};

use crate::driver::{Target, signature};

pub struct PolicyRules;

const SEEDS: &[&str] = &[
    "role:admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    "role:admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))",
    "rule:service_api or (role:member and project_id:%(project_id)s)",
    "not role:a",
    "!",
    "@",
    "",
    "role:a or role:b and role:c",
    "{\"download_image\": \"role:admin\", \"a\": \"rule:b\", \"b\": \"role:x\"}",
    "# readers may not download\n\"download_image\": \"role:admin\"\npublicize_image: 'role:admin or role:publisher'\n---\n",
    "{\"modify_image\": \"role:a and\"}",
    "{\"r0\": \"rule:r1 or rule:r1\", \"r1\": \"rule:r2 or rule:r2\", \"r2\": \"role:x\"}",
];

const DICT: &[&str] = &[
    "(",
    ")",
    " and ",
    " or ",
    "not ",
    "role:",
    "rule:",
    "%(",
    ")s",
    "'",
    "\"",
    ":",
    "@",
    "!",
    "project_id:",
    "user_id:",
    "'public':",
    "%(visibility)s",
    "%(owner)s",
    "rule:default",
    "rule:a",
    "\"a\": ",
    "{",
    "}",
    ",",
    "\n",
    "#",
    "---",
    "http://x",
    "rule:context_is_admin",
];

/// Rules every policy has, and names the seeds define.
const RULES: &[&str] = &[
    "context_is_admin",
    "default",
    "get_image",
    "modify_image",
    "add_image",
    "download_image",
    "publicize_image",
    "get_members",
    "a",
    "b",
    "r0",
    "modify_metadef",
];

impl Target for PolicyRules {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn seeds(&self) -> Vec<Vec<u8>> {
        SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn dictionary(&self) -> &'static [&'static str] {
        DICT
    }

    fn run(&self, input: &[u8]) -> Result<u64, String> {
        let text = String::from_utf8_lossy(input);
        let rule = match policy::parse(&text) {
            Ok(check) => {
                let rendered = check.to_string();
                match policy::parse(&rendered) {
                    Ok(again) if again == check => {}
                    other => {
                        return Err(format!(
                            "{text:?} renders as {rendered:?}, which parses as {other:?}"
                        ));
                    }
                }
                1
            }
            Err(_) => 0,
        };
        let file = match Policy::from_text(&text) {
            Ok(p) => {
                let who = Identity {
                    project: Some("p".into()),
                    user: Some("u".into()),
                    roles: vec!["member".into(), "reader".into(), "x".into()],
                };
                let target = PolicyTarget::new()
                    .with("project_id", Some("p"))
                    .with("owner", Some("p"))
                    .with("visibility", Some("public"));
                RULES
                    .iter()
                    .map(|r| u64::from(p.allows(r, &who, &target)))
                    .sum::<u64>()
                    + 1
            }
            Err(e) => signature(e.split(':').next().unwrap_or_default().to_owned()) % 1000 + 100,
        };
        Ok(signature((rule, file)))
    }
}
