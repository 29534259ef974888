//! Keeps state in the host's key-value store, for the tests: every create
//! counts itself and remembers the instance's plan; `info` shows both.

use orizuru_sdk::kv::Bucket;
use orizuru_sdk::{Context, CreateRequest, InfoItem, Instance, Provisioned, Result, Service};

struct Counter;

impl Service for Counter {
    fn create(request: CreateRequest) -> Result<Provisioned> {
        let bucket = Bucket::open("counts")?;
        bucket.increment("creates", 1)?;
        let plan = request.instance.plan.unwrap_or_else(|| "none".into());
        bucket.set_json(&format!("plan:{}", request.instance.name), &plan)?;
        Ok(Provisioned::ready())
    }

    fn remove(instance: Instance, _context: Context) -> Result<()> {
        Bucket::open("counts")?.delete(&format!("plan:{}", instance.name))
    }

    fn info(instance: Instance, _context: Context) -> Result<Vec<InfoItem>> {
        let bucket = Bucket::open("counts")?;
        let creates = bucket.get("creates")?.unwrap_or_default();
        let plan: Option<String> = bucket.get_json(&format!("plan:{}", instance.name))?;
        Ok(vec![
            InfoItem::new("Creates", String::from_utf8_lossy(&creates)),
            InfoItem::new("Plan", plan.unwrap_or_else(|| "forgotten".into())),
            InfoItem::new("Keys", bucket.keys()?.join(",")),
        ])
    }
}

orizuru_sdk::export!(Counter);
