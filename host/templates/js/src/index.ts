// The tsuru service "{{name}}", as an Orizuru plugin.
//
// A starting point: tsuru's fake API, made slightly useful. It offers one
// plan, accepts every instance and tells each bound app which instance it
// got. Every action not written here answers what the SDK defaults to; the
// SDK's guide, {{sdk}}/js/README.md, lists them all and the capabilities a
// plugin may be granted (logging, config and secrets, key-value, SQL).

import {
  type AppBinding,
  type Context,
  type CreateRequest,
  type Env,
  type Instance,
  type Plan,
  Provisioned,
  Service,
  exportService,
} from "orizuru-sdk";

class Plugin extends Service {
  /** The plans `tsuru service info {{name}}` lists. */
  override plans(_context: Context): Plan[] {
    return [{ name: "default", description: "The only plan, for now" }];
  }

  /**
   * A new instance: provision it here. Answer `Provisioned.pending()` when
   * that finishes later, and `.withData(state)` for what later calls need.
   */
  override create(_request: CreateRequest): Provisioned {
    return Provisioned.ready();
  }

  /** The env vars an app bound to the instance gets. */
  override bindApp(instance: Instance, app: AppBinding): Env {
    return { "{{env}}_INSTANCE": instance.name, "{{env}}_APP": app.appName };
  }
}

exportService(new Plugin());
