"""Write small MaxMind DB files for tests with Debian's MaxMind::DB::Writer
(libmaxmind-db-writer-perl), in the schemas the proxy reads."""
import json
import subprocess

_WRITER = r'''
use strict; use warnings;
use JSON::PP;
use MaxMind::DB::Writer::Tree;
my $spec = decode_json(do { local $/; <STDIN> });
my %types = (
    country => 'map', iso_code => 'utf8_string', registered_country => 'map',
    country_code => 'utf8_string', autonomous_system_number => 'uint32',
    autonomous_system_organization => 'utf8_string',
);
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => $spec->{type},
    languages => ['en'], description => { en => 'smtp-tls-proxy test database' },
    map_key_type_callback => sub { $types{ $_[0] } },
    remove_reserved_networks => 0, alias_ipv6_to_ipv4 => 1,
);
for my $e (@{ $spec->{entries} }) { $tree->insert_network($e->[0], $e->[1]); }
open my $fh, '>:raw', $spec->{path} or die "open $spec->{path}: $!";
$tree->write_tree($fh);
close $fh or die;
'''


def write_mmdb(path, db_type, entries):
    """entries: list of (network, record dict), e.g.
    ("127.0.0.2/32", {"country": {"iso_code": "DE"}})."""
    spec = {"path": path, "type": db_type, "entries": [[n, r] for n, r in entries]}
    subprocess.run(["perl", "-e", _WRITER], input=json.dumps(spec).encode(),
                   check=True, capture_output=True, timeout=60)
    return path
