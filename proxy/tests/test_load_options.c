/*
 * test_load_options.c - smtp-load's options.h: defaults, sizes with
 * suffixes, the required stop condition, the sink's own options, and
 * usage errors.
 */
#include "smtp-load/options.h"
#include "unit.h"

/* parse runs opts_parse on a NULL-terminated argument list. */
static enum opts_result parse(struct load_opts *o, char *why, const char **args) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"smtp-load";
    for (; args[argc - 1] != NULL && argc < 31; argc++) {
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    return opts_parse(argc, argv, o, why, 256);
}

UNIT_TEST(load_options_defaults_are_the_documented_ones) {
    struct load_opts o;
    char why[256];
    const char *a[] = {"-n", "5", "127.0.0.1:25", NULL};
    CHECK_INT(parse(&o, why, a), OPTS_RUN);
    CHECK_INT(o.mode, MODE_PLAIN);
    CHECK_INT(o.tls_version, 13);
    CHECK_INT(o.connections, 10);
    CHECK_INT(o.messages, 1);
    CHECK_INT(o.size, 4096);
    CHECK_INT(o.threads, 1);
    CHECK_INT(o.source_range, 1);
    CHECK_INT(o.count, 5);
    CHECK_STR(o.from, "load@src.test");
    CHECK_STR(o.to, "sink@dst.test");
    CHECK_STR(o.ehlo, "load.test");
    CHECK_STR(o.target, "127.0.0.1:25");
    CHECK(o.sni == NULL);
    CHECK(o.timeout == 60);
    CHECK(!o.pipelining && !o.resume && !o.json);
}

UNIT_TEST(load_options_every_client_option_is_read) {
    struct load_opts o;
    char why[256];
    const char *a[] = {"--mode", "starttls", "--tls-version", "1.2", "--resume", "--sni",
                       "mx.example.test", "-c", "20", "-m", "0", "-s", "10K", "-d", "2.5",
                       "-t", "2", "--source-range", "50", "--timeout", "5", "--json",
                       "--pipelining", "[::1]:587", NULL};
    CHECK_INT(parse(&o, why, a), OPTS_RUN);
    CHECK_INT(o.mode, MODE_STARTTLS);
    CHECK_INT(o.tls_version, 12);
    CHECK(o.resume && o.json && o.pipelining);
    CHECK_STR(o.sni, "mx.example.test");
    CHECK_INT(o.connections, 20);
    CHECK_INT(o.messages, 0);
    CHECK_INT(o.size, 10240);
    CHECK(o.duration == 2.5);
    CHECK_INT(o.threads, 2);
    CHECK_INT(o.source_range, 50);
    CHECK_STR(o.target, "[::1]:587");
}

UNIT_TEST(load_options_sizes_take_k_and_m) {
    size_t n;
    CHECK(parse_size("4096", &n) && n == 4096);
    CHECK(parse_size("4K", &n) && n == 4096);
    CHECK(parse_size("4k", &n) && n == 4096);
    CHECK(parse_size("10M", &n) && n == 10485760);
    CHECK(parse_size("1024M", &n) && n == 1073741824);
    CHECK(!parse_size("1025M", &n));
    CHECK(!parse_size("0", &n));
    CHECK(!parse_size("K", &n));
    CHECK(!parse_size("4G", &n));
    CHECK(!parse_size("-4", &n));
    CHECK(!parse_size("4 K", &n));
}

UNIT_TEST(load_options_host_and_port_split) {
    char h[64], p[64];
    CHECK(split_hostport("127.0.0.1:2525", h, p, sizeof(h)));
    CHECK_STR(h, "127.0.0.1");
    CHECK_STR(p, "2525");
    CHECK(split_hostport("[::1]:25", h, p, sizeof(h)));
    CHECK_STR(h, "::1");
    CHECK(split_hostport("localhost:0", h, p, sizeof(h)));
    CHECK(!split_hostport("::1:25", h, p, sizeof(h)));
    CHECK(!split_hostport("127.0.0.1", h, p, sizeof(h)));
    CHECK(!split_hostport("127.0.0.1:65536", h, p, sizeof(h)));
    CHECK(!split_hostport(":25", h, p, sizeof(h)));
}

UNIT_TEST(load_options_a_stop_condition_is_required) {
    struct load_opts o;
    char why[256];
    const char *none[] = {"127.0.0.1:25", NULL};
    CHECK_INT(parse(&o, why, none), OPTS_USAGE);
    CHECK(strstr(why, "-n") != NULL);
    const char *idle[] = {"--idle", "100", "127.0.0.1:25", NULL};
    CHECK_INT(parse(&o, why, idle), OPTS_RUN);
    const char *hold[] = {"--hold", "1", "-n", "1", "127.0.0.1:25", NULL};
    CHECK_INT(parse(&o, why, hold), OPTS_USAGE);
}

UNIT_TEST(load_options_bad_values_are_usage_errors) {
    struct load_opts o;
    char why[256];
    const char *cases[][5] = {
        {"--mode", "ssl", "127.0.0.1:25", NULL},   {"--tls-version", "1.1", "127.0.0.1:25", NULL},
        {"-c", "0", "127.0.0.1:25", NULL},         {"-d", "-1", "127.0.0.1:25", NULL},
        {"-d", "nan", "127.0.0.1:25", NULL},       {"--bogus", "127.0.0.1:25", NULL, NULL},
        {"-n", "1", "nohostport", NULL},           {"-n", "1", "a:1", "b:2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (parse(&o, why, cases[i]) != OPTS_USAGE) {
            unit_fail(__FILE__, __LINE__, "case %zu accepted", i);
        }
    }
}

UNIT_TEST(load_options_sink_takes_only_its_own_options) {
    struct load_opts o;
    char why[256];
    const char *ok[] = {"--sink", "--listen", "127.0.0.1:2525", "--port-file", "/tmp/p", "-t",
                        "2", "--json", NULL};
    CHECK_INT(parse(&o, why, ok), OPTS_RUN);
    CHECK(o.sink && o.json);
    CHECK_STR(o.listen, "127.0.0.1:2525");
    CHECK_STR(o.port_file, "/tmp/p");
    const char *dflt[] = {"--sink", NULL};
    CHECK_INT(parse(&o, why, dflt), OPTS_RUN);
    CHECK_STR(o.listen, "127.0.0.1:0");
    const char *client[] = {"--sink", "-c", "5", NULL};
    CHECK_INT(parse(&o, why, client), OPTS_USAGE);
    const char *target[] = {"--sink", "127.0.0.1:25", NULL};
    CHECK_INT(parse(&o, why, target), OPTS_USAGE);
}

UNIT_TEST(load_options_help_and_version) {
    struct load_opts o;
    char why[256];
    const char *h[] = {"-h", NULL};
    CHECK_INT(parse(&o, why, h), OPTS_HELP);
    const char *v[] = {"--version", NULL};
    CHECK_INT(parse(&o, why, v), OPTS_VERSION);
    CHECK(strstr(opts_help(), "NOT verified") != NULL);
    CHECK(strstr(opts_help(), "default off") != NULL);
}
