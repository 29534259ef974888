//! The actions that change no instance: plans, info, status and proxied
//! requests. A status that finds a pending instance up records it ready.

use super::{ActionError, Service};
use crate::ledger::{Change, InstanceRecord};
use crate::model::{
    Action, Context, InfoItem, InstanceState, Plan, ProxyRequest, ProxyResponse, Refusal, Status,
};
use crate::runtime::{Failure, Plugin};

impl Service {
    pub async fn plans(&self, context: Context) -> Result<Vec<Plan>, ActionError> {
        match self.plugin().await?.plans(context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Plans, failure)),
        }
    }

    pub async fn info(&self, name: &str, context: Context) -> Result<Vec<InfoItem>, ActionError> {
        let current = self.load(Action::Info, name).await?;
        match self.plugin().await?.info(current.instance, context).await {
            Err(Failure::Refused(Refusal::Unsupported)) => Ok(Vec::new()),
            outcome => outcome.map_err(|failure| self.failure(Action::Info, failure)),
        }
    }

    /// How the instance is. One still being created is pending, whatever the
    /// plugin would say: it is not an instance yet.
    pub async fn status(&self, name: &str, context: Context) -> Result<Status, ActionError> {
        let current = match self.load(Action::Status, name).await {
            Err(ActionError::BeingCreated { .. }) => {
                return Ok(Status::Pending(format!(
                    "instance \"{name}\" is still being created"
                )));
            }
            loaded => loaded?,
        };
        self.health(&*self.plugin().await?, current, context).await
    }

    /// Forwards a request as it came: to an instance, or to the service when
    /// `name` is `None`.
    pub async fn proxy(
        &self,
        name: Option<&str>,
        request: ProxyRequest,
        context: Context,
    ) -> Result<ProxyResponse, ActionError> {
        let instance = match name {
            Some(name) => Some(self.load(Action::Proxy, name).await?.instance),
            None => None,
        };
        self.plugin()
            .await?
            .proxy(instance, request, context)
            .await
            .map_err(|failure| self.failure(Action::Proxy, failure))
    }

    /// Asks the plugin how the instance is, and records that a pending one is up.
    pub(super) async fn health(
        &self,
        plugin: &dyn Plugin,
        current: InstanceRecord,
        context: Context,
    ) -> Result<Status, ActionError> {
        let status = plugin
            .status(current.instance.clone(), context)
            .await
            .map_err(|failure| self.failure(Action::Status, failure))?;
        if status == Status::Up && current.state == InstanceState::Pending {
            let name = current.instance.name;
            let promote = vec![Change::Promote {
                instance: name.clone(),
            }];
            self.ledger()
                .commit(self.id(), promote, None)
                .await
                .map_err(|source| self.ledger_error(Action::Status, &name, source))?;
        }
        Ok(status)
    }
}
