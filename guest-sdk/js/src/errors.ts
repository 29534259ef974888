import type { Error as WitError } from "orizuru:service/types@0.1.0";

/**
 * Why a plugin refused a call. Throw one of its subclasses from an action;
 * tsuru shows the sentence to its user word for word, so write one sentence
 * that names the thing and says what to do.
 *
 * `payload` is the WIT `error` variant: componentize-js also reads a thrown
 * value's own `payload` property as a `result`'s error case.
 */
export abstract class ServiceError extends Error {
  readonly payload: WitError;

  protected constructor(payload: WitError, message: string) {
    super(message);
    this.payload = payload;
    this.name = new.target.name;
  }
}

/** The request is wrong: a bad parameter, an unknown plan (400). */
export class Invalid extends ServiceError {
  constructor(sentence: string) {
    super({ tag: "invalid", val: sentence }, sentence);
  }
}

/** Something the request names does not exist (404). */
export class NotFound extends ServiceError {
  constructor(sentence: string) {
    super({ tag: "not-found", val: sentence }, sentence);
  }
}

/** The request clashes with something that exists (409). */
export class Conflict extends ServiceError {
  constructor(sentence: string) {
    super({ tag: "conflict", val: sentence }, sentence);
  }
}

/** The instance is still being provisioned; try again later (412). */
export class NotReady extends ServiceError {
  constructor(sentence: string) {
    super({ tag: "not-ready", val: sentence }, sentence);
  }
}

/** The service could not do it (500). */
export class Failed extends ServiceError {
  constructor(sentence: string) {
    super({ tag: "failed", val: sentence }, sentence);
  }
}

/**
 * This service does not offer this action; the host answers as tsuru
 * expects for it (404, or success for an undo).
 */
export class Unsupported extends ServiceError {
  constructor() {
    super({ tag: "unsupported" }, "this service does not offer this action");
  }
}

/**
 * Parameters the caller must give, by name: 400 with
 * `{"missing_params": [...]}`, which tsuru turns into a question (from
 * `plans`, `["cluster"]` asks the user for a pool).
 */
export class MissingParams extends ServiceError {
  readonly params: readonly string[];

  constructor(params: readonly string[]) {
    super({ tag: "missing-params", val: [...params] }, `missing parameters: ${params.join(", ")}`);
    this.params = params;
  }
}
