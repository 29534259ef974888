"""The tsuru service "{{name}}", as an Orizuru plugin.

A starting point: tsuru's fake API, made slightly useful. It offers one plan,
accepts every instance and tells each bound app which instance it got. Every
method not written here answers what the SDK defaults to; the SDK's guide,
{{sdk}}/python/README.md, lists them all and the capabilities a plugin may be
granted (logging, config and secrets, key-value, SQL).
"""

import orizuru
from orizuru import AppBinding, Context, CreateRequest, Env, Instance, Plan, Provisioned


class Plugin(orizuru.Service):
    def plans(self, context: Context) -> list[Plan]:
        """The plans `tsuru service info {{name}}` lists."""
        return [Plan("default", "The only plan, for now")]

    def create(self, request: CreateRequest) -> Provisioned:
        """A new instance: provision it here. Answer Provisioned.pending() when
        that finishes later, and data=... for what later calls need."""
        return Provisioned.ready()

    def bind_app(self, instance: Instance, app: AppBinding) -> Env:
        """The env vars an app bound to the instance gets."""
        return {"{{env}}_INSTANCE": instance.name, "{{env}}_APP": app.app_name}


orizuru.export(Plugin)
