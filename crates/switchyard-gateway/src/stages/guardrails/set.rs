//! Which guardrails apply to a request: the global `[guardrails]` settings with the matching
//! `[[guardrails.overrides]]` applied. Every combination the overrides can produce is compiled
//! when the config is loaded, so a request only does two hash lookups.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_guardrails::GuardrailError;

use super::{Guardrails, GuardrailsConfig};

/// `None` where that combination turns everything off.
type Compiled = Option<Arc<Guardrails>>;

#[derive(Default)]
struct ByModel {
    named: HashMap<String, Compiled>,
    /// Models no override names.
    other: Compiled,
}

#[derive(Default)]
pub struct GuardrailSet {
    named: HashMap<String, ByModel>,
    /// Tenants no override names.
    other: ByModel,
}

impl GuardrailSet {
    pub fn new(cfg: &GuardrailsConfig) -> Result<Self, GuardrailError> {
        let mut tenants: Vec<Option<&str>> = vec![None];
        let mut models: Vec<Option<&str>> = vec![None];
        for o in &cfg.overrides {
            if let Some(t) = o.tenant.as_deref().filter(|t| !tenants.contains(&Some(t))) {
                tenants.push(Some(t));
            }
            if let Some(m) = o.model.as_deref().filter(|m| !models.contains(&Some(m))) {
                models.push(Some(m));
            }
        }
        // Identical effective settings share one compiled instance.
        let mut built: Vec<(GuardrailsConfig, Compiled)> = Vec::new();
        let mut set = GuardrailSet::default();
        for tenant in &tenants {
            let mut by_model = ByModel::default();
            for model in &models {
                let effective = cfg.effective(*tenant, *model);
                let compiled = match built.iter().find(|(c, _)| *c == effective) {
                    Some((_, g)) => g.clone(),
                    None => {
                        let g = Guardrails::new(&effective)?.map(Arc::new);
                        built.push((effective, g.clone()));
                        g
                    }
                };
                match model {
                    Some(m) => {
                        by_model.named.insert((*m).to_owned(), compiled);
                    }
                    None => by_model.other = compiled,
                }
            }
            match tenant {
                Some(t) => {
                    set.named.insert((*t).to_owned(), by_model);
                }
                None => set.other = by_model,
            }
        }
        Ok(set)
    }

    /// The guardrails for a request of `tenant` asking for `model`, or `None` when all are off.
    pub fn for_request(&self, tenant: &str, model: &str) -> Option<&Arc<Guardrails>> {
        let by_model = self.named.get(tenant).unwrap_or(&self.other);
        by_model
            .named
            .get(model)
            .unwrap_or(&by_model.other)
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::{ChatMessage, Role};

    #[test]
    fn overrides_pick_per_tenant_and_model() {
        let cfg: GuardrailsConfig = toml::from_str(
            r#"
pii = "redact"
[[overrides]]
tenant = "bank"
pii = "block"
[[overrides]]
model = "local-chat"
pii = "off"
"#,
        )
        .unwrap();
        let set = GuardrailSet::new(&cfg).unwrap();
        let card = "card 4111 1111 1111 1111";
        let screen = |tenant: &str, model: &str| {
            let mut msgs = vec![ChatMessage::new(Role::User, card)];
            match set.for_request(tenant, model) {
                None => Ok(msgs[0].text()),
                Some(g) => g.screen(&mut msgs).map(|_| msgs[0].text()),
            }
        };
        assert!(!screen("acme", "gpt-4o").unwrap().contains("4111"));
        assert_eq!(screen("bank", "gpt-4o").unwrap_err().guardrail, "pii");
        assert_eq!(screen("acme", "local-chat").unwrap(), card);
        // The model override comes later, so it wins for the bank too.
        assert_eq!(screen("bank", "local-chat").unwrap(), card);
        assert!(GuardrailSet::new(&GuardrailsConfig::default())
            .unwrap()
            .for_request("any", "any")
            .is_none());
    }
}
