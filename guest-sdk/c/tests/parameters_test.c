/* The SDK's reading of parameters and instance data, against the sentences
 * of guest-sdk/CONTRACT.md. Built for this machine, not for wasm, by
 * `make check`; prints each failure and then "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int passed, failed;

static void check(bool ok, const char *what, const char *got) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAILED: %s (got: %s)\n", what, got ? got : "no error");
    }
}

static orizuru_error *instance_parameters(const char *json, orizuru_field *fields, size_t count) {
    orizuru_instance instance = {.name = "orders", .parameters = json};
    return orizuru_instance_parameters(&instance, fields, count);
}

/* `json` read into `fields` is refused with exactly `sentence`. */
static void refused(const char *json, orizuru_field *fields, size_t count, const char *sentence) {
    orizuru_error *err = instance_parameters(json, fields, count);
    const char *got = orizuru_error_message(err);
    check(err && err->kind == ORIZURU__INVALID && strcmp(got, sentence) == 0, sentence, got);
}

static void accepted(const char *json, orizuru_field *fields, size_t count) {
    orizuru_error *err = instance_parameters(json, fields, count);
    check(!err, json, orizuru_error_message(err));
}

static void whole_numbers(void) {
    uint64_t size = 0;
    int64_t offset = 0;
    orizuru_field fields[] = {ORIZURU_U64("size", &size), ORIZURU_I64("offset", &offset)};
    const size_t n = ORIZURU_COUNT(fields);

    accepted("{\"size\": 128}", fields, n);
    check(size == 128 && fields[0].present, "a JSON integer", NULL);
    accepted("{\"size\": \"128\", \"offset\": \"-3\"}", fields, n);
    check(size == 128 && offset == -3, "text of a whole number", NULL);
    accepted("{\"size\": \" +5 \"}", fields, n);
    check(size == 5, "a sign and spaces", NULL);
    accepted("{\"size\": \"18446744073709551615\", \"offset\": \"-9223372036854775808\"}", fields,
             n);
    check(size == UINT64_MAX && offset == INT64_MIN, "the ends of the ranges", NULL);

    refused("{\"size\": \"lots\"}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number, not \"lots\"");
    refused("{\"size\": \"1.5\"}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number, not \"1.5\"");
    refused("{\"size\": \"\"}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number, not \"\"");
    refused("{\"size\": 1.5}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number, not 1.5");
    refused("{\"size\": true}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number, not true");
    refused("{\"size\": \"-3\"}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number from 0 to "
            "18446744073709551615, not \"-3\"");
    refused("{\"size\": \"18446744073709551616\"}", fields, n,
            "parameter \"size\" of instance \"orders\" must be a whole number from 0 to "
            "18446744073709551615, not \"18446744073709551616\"");
    refused("{\"offset\": 9223372036854775808}", fields, n,
            "parameter \"offset\" of instance \"orders\" must be a whole number from "
            "-9223372036854775808 to 9223372036854775807, not 9.2233720368547758e+18");
}

static void numbers(void) {
    double rate = 0;
    orizuru_field fields[] = {ORIZURU_F64("rate", &rate)};
    const size_t n = ORIZURU_COUNT(fields);
    const struct {
        const char *json;
        double value;
    } good[] = {
        {"{\"rate\": 1.5}", 1.5},       {"{\"rate\": \"1.5\"}", 1.5},
        {"{\"rate\": \"2\"}", 2},         {"{\"rate\": \"-0.25\"}", -0.25},
        {"{\"rate\": \"1e3\"}", 1000},    {"{\"rate\": \".5\"}", 0.5},
        {"{\"rate\": \" 12.5 \"}", 12.5},
    };
    for (size_t i = 0; i < ORIZURU_COUNT(good); i++) {
        accepted(good[i].json, fields, n);
        check(rate == good[i].value, good[i].json, NULL);
    }
    const char *bad[] = {"fast", "nan", "inf", "1_000", "", "0x10", "1e", "1e999"};
    for (size_t i = 0; i < ORIZURU_COUNT(bad); i++) {
        refused(orizuru_format("{\"rate\": \"%s\"}", bad[i]), fields, n,
                orizuru_format("parameter \"rate\" of instance \"orders\" must be a number, "
                               "not \"%s\"",
                               bad[i]));
    }
}

static void booleans_and_text(void) {
    bool durable = false;
    const char *simulate = NULL;
    orizuru_field fields[] = {ORIZURU_BOOL("durable", &durable),
                              ORIZURU_STRING("simulate", &simulate)};
    const size_t n = ORIZURU_COUNT(fields);

    accepted("{\"durable\": true}", fields, n);
    check(durable, "true", NULL);
    accepted("{\"durable\": \"FALSE\"}", fields, n);
    check(!durable, "the text FALSE", NULL);
    accepted("{\"durable\": \"True\", \"simulate\": \"down\"}", fields, n);
    check(durable && strcmp(simulate, "down") == 0, "the text True and a text", NULL);
    refused("{\"durable\": \"yes\"}", fields, n,
            "parameter \"durable\" of instance \"orders\" must be true or false, not \"yes\"");
    refused("{\"durable\": \"1\"}", fields, n,
            "parameter \"durable\" of instance \"orders\" must be true or false, not \"1\"");
    refused("{\"durable\": 1}", fields, n,
            "parameter \"durable\" of instance \"orders\" must be true or false, not 1");
    refused("{\"simulate\": 5}", fields, n,
            "parameter \"simulate\" of instance \"orders\" must be text, not 5");
    refused("{\"simulate\": [\"a\"]}", fields, n,
            "parameter \"simulate\" of instance \"orders\" must be text, not a list");
    refused("{\"durable\": \"say \\\"yes\\\"\"}", fields, n,
            "parameter \"durable\" of instance \"orders\" must be true or false, not "
            "\"say \\\"yes\\\"\"");
}

static void optional_unknown_and_missing(void) {
    uint64_t hours = 24;
    double rate = NAN;
    orizuru_field fields[] = {ORIZURU_U64("retention_hours", &hours),
                              ORIZURU_F64("max_rate", &rate)};
    const size_t n = ORIZURU_COUNT(fields);

    accepted("{}", fields, n);
    check(hours == 24 && isnan(rate) && !fields[0].present, "absent keeps the default", NULL);
    accepted("{\"retention_hours\": null}", fields, n);
    check(hours == 24 && !fields[0].present, "null keeps the default", NULL);
    refused("{\"colour\": \"red\"}", fields, n,
            "instance \"orders\" has no parameter \"colour\"; the parameters are: "
            "retention_hours, max_rate");
    refused("{\"colour\": \"red\"}", NULL, 0,
            "instance \"orders\" has no parameter \"colour\"; it takes no parameters");

    const char *name = NULL;
    orizuru_field required[] = {ORIZURU_REQUIRED(ORIZURU_STRING("name", &name))};
    refused("{}", required, 1, "parameter \"name\" of instance \"orders\" is missing");
    refused("{\"name\": null}", required, 1,
            "parameter \"name\" of instance \"orders\" must be text, not null");
}

static void groups(void) {
    uint64_t size = 0;
    orizuru_field db[] = {ORIZURU_U64("size", &size)};
    orizuru_field fields[] = {ORIZURU_GROUP("db", db)};
    const size_t n = ORIZURU_COUNT(fields);

    accepted("{\"db\": {\"size\": \"7\"}}", fields, n);
    check(size == 7 && fields[0].present && db[0].present, "a nested group", NULL);
    refused("{\"db\": {\"size\": \"big\"}}", fields, n,
            "parameter \"db.size\" of instance \"orders\" must be a whole number, not \"big\"");
    refused("{\"db\": {\"sise\": 1}}", fields, n,
            "instance \"orders\" has no parameter \"db.sise\"; the parameters are: db.size");
    refused("{\"db\": \"x\"}", fields, n,
            "parameter \"db\" of instance \"orders\" must be a group of parameters, not \"x\"");
    refused("{\"size\": {\"a\": 1}}", db, 1,
            "parameter \"size\" of instance \"orders\" must be a whole number, not a group of "
            "parameters");
}

static void bindings(void) {
    const char *prefix = NULL;
    orizuru_field fields[] = {ORIZURU_STRING("prefix", &prefix)};
    orizuru_app_binding app = {.app_name = "web", .parameters = "{\"prefx\": \"a\"}"};
    orizuru_error *err = orizuru_app_parameters(&app, fields, ORIZURU_COUNT(fields));
    const char *sentence =
        "the binding of app \"web\" has no parameter \"prefx\"; the parameters are: prefix";
    check(err && strcmp(orizuru_error_message(err), sentence) == 0, sentence,
          orizuru_error_message(err));
}

static void data(void) {
    const char *vhost = NULL;
    double ready_at = 0;
    orizuru_field fields[] = {ORIZURU_REQUIRED(ORIZURU_STRING("vhost", &vhost)),
                              ORIZURU_F64("ready_at", &ready_at)};
    const size_t n = ORIZURU_COUNT(fields);
    bool present = true;

    orizuru_instance none = {.name = "q"};
    check(!orizuru_instance_data(&none, fields, n, &present) && !present, "no data", NULL);

    orizuru_instance kept = {.name = "q", .data = "{\"vhost\":\"/q\",\"ready_at\":17,\"old\":1}"};
    orizuru_error *err = orizuru_instance_data(&kept, fields, n, &present);
    check(!err && present && strcmp(vhost, "/q") == 0 && ready_at == 17,
          "data read back, an unknown key skipped", orizuru_error_message(err));

#define UNREADABLE "the data stored for instance \"q\" could not be read: "
    const struct {
        const char *data, *sentence;
    } bad[] = {
        {"{\"ready_at\":1}", UNREADABLE "\"vhost\" is missing"},
        {"{\"vhost\":5}", UNREADABLE "\"vhost\" must be text, not 5"},
        {"[1]", UNREADABLE "it is not a JSON object"},
        {"{\"vhost\":", UNREADABLE "it is not JSON (it goes wrong at byte 9)"},
    };
    for (size_t i = 0; i < ORIZURU_COUNT(bad); i++) {
        orizuru_instance broken = {.name = "q", .data = bad[i].data};
        err = orizuru_instance_data(&broken, fields, n, &present);
        check(err && err->kind == ORIZURU__FAILED &&
                  strcmp(orizuru_error_message(err), bad[i].sentence) == 0,
              bad[i].sentence, orizuru_error_message(err));
    }
}

int main(void) {
    void (*groups_of_cases[])(void) = {whole_numbers, numbers, booleans_and_text,
                                       optional_unknown_and_missing, groups, bindings, data};
    for (size_t i = 0; i < ORIZURU_COUNT(groups_of_cases); i++) {
        orizuru__call_start();
        groups_of_cases[i]();
        orizuru__arena_reset();
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
