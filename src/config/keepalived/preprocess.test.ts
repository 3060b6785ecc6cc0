import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { errorsOf, parseText, warningsOf as allWarnings, withTempDir, writeTree } from '../../testing/index.js';

/** Warnings but the one for a virtual_server without `protocol` (most configurations here omit it; its own test checks it). */
const warningsOf = (r: Parameters<typeof allWarnings>[0]): ReturnType<typeof allWarnings> => allWarnings(r).filter((d) => !(d.keyword === 'protocol' && d.code === 'W_ADJUSTED'));
import { loadKeepalivedConfig } from './index.js';

describe('keepalived preprocessing', () => {
  it('follows include globs relative to the including file, in sorted order', async () => {
    await withTempDir((dir) => {
      writeTree(dir, {
        'main.conf': 'include sub/*.conf\n',
        'sub/b.conf': 'virtual_server 10.0.0.2 80 { real_server 10.1.0.2 80 { } }\n',
        'sub/a.conf': 'include ../more/{x,y}.conf\nvirtual_server 10.0.0.1 80 { real_server 10.1.0.1 80 { } }\n',
        'more/x.conf': 'virtual_server 10.0.0.3 80 { }\n',
        'more/y.conf': 'virtual_server 10.0.0.4 80 { }\n',
      });
      const r = loadKeepalivedConfig(path.join(dir, 'main.conf'), { configId: 't', env: {} });
      assert.deepEqual(errorsOf(r), []);
      assert.deepEqual(r.config.virtualServers.map((v) => (v.endpoint.kind === 'address' ? v.endpoint.address : '')),
        ['10.0.0.3', '10.0.0.4', '10.0.0.1', '10.0.0.2']);
      assert.equal(r.files.length, 5);
    });
  });

  it('substitutes parameters in include paths (${_PWD}, ${SUB}), as keepalived does', async () => {
    await withTempDir((dir) => {
      writeTree(dir, {
        'main.conf': '$SUB=conf.d\ninclude ${_PWD}/${SUB}/*.conf\n',
        'conf.d/a.conf': 'virtual_server 10.0.0.1 80 { real_server 10.1.0.1 80 { } }\n',
      });
      const r = loadKeepalivedConfig(path.join(dir, 'main.conf'), { configId: 't', env: {} });
      assert.deepEqual([errorsOf(r), warningsOf(r)], [[], []]);
      assert.equal(r.config.virtualServers.length, 1);
    });
  });

  it('a comment-only line inside a multi-line $PARAM definition is skipped; the definition goes on', () => {
    const r = parseText('$RS= \\\n  # the first server\n  real_server 10.1.0.1 80 { \\\n! and a comment\n  weight 2 \\\n  }\nvirtual_server 10.0.0.1 80 {\n  $RS\n}\n');
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config?.virtualServers[0]?.realServers.map((x) => [x.address, x.weight]), [['10.1.0.1', 2]]);
  });

  it('~SEQ with spaces around its parentheses and arguments, and a generator right after a block\'s {', () => {
    for (const text of [
      'vrrp_instance V {\n interface lo\n virtual_router_id 1\n virtual_ipaddress {\n~SEQ ( ID , 1 , 2 ) 10.0.0.$ID\n }\n}\n',
      'vrrp_instance V {\n interface lo\n virtual_router_id 1\n virtual_ipaddress { ~SEQ(ID,1,2) 10.0.0.$ID\n }\n}\n',
    ]) {
      const r = parseText(text);
      assert.deepEqual(errorsOf(r), [], text);
      assert.deepEqual(r.config?.vrrpInstances[0]?.virtualIpAddresses.map((x) => x.address), ['10.0.0.1', '10.0.0.2'], text);
    }
  });

  it('an @id or comment prefix that comes from a parameter is read as written (keepalived.conf(5)\'s $IF_MAIN idiom)', () => {
    const text = `$IF_MAIN=@main\n$IF_OTHER=@^main\n$NOTE=\${_HASH}\nvrrp_instance V {\n interface eth0\n virtual_router_id 1\n priority 100\n $IF_MAIN priority 240\n $IF_OTHER priority 50\n $NOTE priority 7\n virtual_ipaddress { 10.0.0.9 }\n}\n`;
    const main = parseText(text, { configId: 'main' });
    assert.deepEqual(errorsOf(main), []);
    assert.equal(main.config.vrrpInstances[0]?.priority, 240);
    const other = parseText(text, { configId: 'backup' });
    assert.equal(other.config.vrrpInstances[0]?.priority, 50);
  });

  it('keepalived.conf(5)\'s nested multi-line example ($RS inside $VS, $RS_NUM set between uses): two virtual servers of three real servers each', () => {
    const text = `    $RS= \\
    real_server 192.168.\${VS_NUM}.\${RS_NUM} 80 { \\
        weight 1 \\
        inhibit_on_failure \\
        smtp_alert \\
        MISC_CHECK { \\
            misc_path "\${_PWD}/scripts/vs.sh RS_misc.\${INST}.\${VS_NUM}.\${RS_NUM}.0 10.0.\${VS_NUM}.4:80->192.168.\${VS_NUM}.\${RS_NUM}:80" \\
        } \\
        MISC_CHECK { \\
            misc_path "\${_PWD}/scripts/vs.sh RS_misc.\${INST}.\${VS_NUM}.\${RS_NUM}.1 10.0.\${VS_NUM}.4:80->192.168.\${VS_NUM}.\${RS_NUM}:80" \\
        } \\
        notify_up "\${_PWD}/scripts/notify.sh RS_notify.\${INST}.\${VS_NUM}.\${RS_NUM} UP 10.0.\${VS_NUM}.4:80->192.168.\${VS_NUM}.\${RS_NUM}:80" \\
        notify_down "\${_PWD}/scripts/notify.sh RS_notify.\${INST}.\${VS_NUM}.\${RS_NUM} DOWN 10.0.\${VS_NUM}.4:80->192.168.\${VS_NUM}.\${RS_NUM}:80" \\
    }
    $VS= \\
    virtual_server 10.0.\${VS_NUM}.4 80 { \\
        quorum 2 \\
        quorum_up "\${_PWD}/scripts/notify.sh VS_notify.\${INST} UP 10.0.\${VS_NUM}.4:80" \\
        quorum_down "\${_PWD}/scripts/notify.sh VS_notify.\${INST} DOWN 10.0.\${VS_NUM}.4:80" \\
        $RS_NUM=1 \\
        $RS \\
        $RS_NUM=2 \\
        $RS \\
        $RS_NUM=3 \\
        $RS \\
    }
    $VS_NUM=0
    $ALPHA=alpha
    $VS
    $VS_NUM=1
    $ALPHA=
    $VS
`;
    const r = parseText(text);
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(warningsOf(r), []);
    assert.deepEqual(r.config?.virtualServers.map((v) => [v.endpoint.kind === 'address' ? v.endpoint.address : '', v.quorum, v.realServers.map((x) => `${x.address}/${x.checkers.length}`)]), [
      ['10.0.0.4', 2, ['192.168.0.1/2', '192.168.0.2/2', '192.168.0.3/2']],
      ['10.0.1.4', 2, ['192.168.1.1/2', '192.168.1.2/2', '192.168.1.3/2']],
    ]);
  });

  it('a parameter whose value is a ~SEQ line expands when used', () => {
    const r = parseText('$SERVERS=~SEQ(N, 1, 3) real_server 10.1.0.$N 80 { }\nvirtual_server 10.0.0.1 80 {\n $SERVERS\n}\n');
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config?.virtualServers[0]?.realServers.map((x) => x.address), ['10.1.0.1', '10.1.0.2', '10.1.0.3']);
  });

  it('locates diagnostics in included files', async () => {
    await withTempDir((dir) => {
      writeTree(dir, { 'main.conf': '\ninclude inc.conf\n', 'inc.conf': 'virtual_server 10.0.0.1 80 {\n  lb_algo nope\n}\n' });
      const r = loadKeepalivedConfig(path.join(dir, 'main.conf'), { configId: 't', env: {} });
      const e = errorsOf(r);
      assert.equal(e.length, 1);
      assert.equal(e[0]?.loc?.file, path.join(dir, 'inc.conf'));
      assert.equal(e[0]?.loc?.line, 2);
      assert.equal(e[0]?.loc?.col, 11);
    });
  });

  it('reports include loops with the chain, at the include line', async () => {
    await withTempDir((dir) => {
      writeTree(dir, { 'a.conf': 'include b.conf\n', 'b.conf': '\n\ninclude a.conf\n' });
      const r = loadKeepalivedConfig(path.join(dir, 'a.conf'), { configId: 't', env: {} });
      const e = errorsOf(r);
      assert.equal(e.length, 1);
      assert.equal(e[0]?.code, 'E_INCLUDE_LOOP');
      assert.equal(e[0]?.loc?.file, path.join(dir, 'b.conf'));
      assert.equal(e[0]?.loc?.line, 3);
      assert.match(e[0]?.message ?? '', /a\.conf → .*b\.conf → .*a\.conf/);
    });
  });

  it('a missing literal include is an error; an empty glob is a warning', async () => {
    await withTempDir((dir) => {
      writeTree(dir, { 'm.conf': 'include nothere.conf\ninclude conf.d/*.conf\n' });
      const r = loadKeepalivedConfig(path.join(dir, 'm.conf'), { configId: 't', env: {} });
      assert.deepEqual(errorsOf(r).map((d) => [d.code, d.loc?.line, d.loc?.col]), [['E_FILE', 1, 9]]);
      assert.deepEqual(warningsOf(r).map((d) => [d.code, d.loc?.line]), [['W_NO_MATCH', 2]]);
    });
  });

  it('applies @config-id conditionals (and @^ negation)', () => {
    const text = 'global_defs {\n @lb1 router_id one\n @^lb1 router_id other\n}\n';
    assert.equal(parseText(text, { configId: 'lb1' }).config.global.routerId, 'one');
    assert.equal(parseText(text, { configId: 'lb2' }).config.global.routerId, 'other');
  });

  it('substitutes $PARAM and ${PARAM} at use time, recursively; undefined names stay', () => {
    const r = parseText([
      '$BASE=10.2.${SUB}',
      '$SUB=0',
      'virtual_server ${BASE}.100 80 { }',
      '$SUB=10',
      'virtual_server ${BASE}.100 80 { }',
      'virtual_server 10.9.9.9 80 { quorum_up "/bin/x ${NOPE}" }',
    ].join('\n'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config.virtualServers.map((v) => (v.endpoint.kind === 'address' ? v.endpoint.address : '')), ['10.2.0.100', '10.2.10.100', '10.9.9.9']);
    assert.deepEqual(r.config.virtualServers[2]?.quorumUp?.argv, ['/bin/x', '${NOPE}']);
  });

  it('expands multi-line definitions with backslash continuation, definitions inside taking effect in order', () => {
    const r = parseText([
      '$RS= \\',
      '  real_server 10.0.1.${N} 80 { \\',
      '     weight ${N} \\',
      '  }',
      'virtual_server 10.0.0.1 80 {',
      '  $N=1',
      '  $RS',
      '  $N=2',
      '  $RS',
      '}',
    ].join('\n'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config.virtualServers[0]?.realServers.map((s) => [s.address, s.weight]), [['10.0.1.1', 1], ['10.0.1.2', 2]]);
  });

  it('expands ~SEQ, ~SEQx and ~LST (nested, multi-variable)', () => {
    const r = parseText([
      'virtual_server 10.0.0.1 80 {',
      '  ~SEQ(A, 1, 2, 5) real_server 10.0.1.${A} 80 { }',
      '}',
      'vrrp_instance V { interface eth0',
      ' virtual_router_id 9',
      ' virtual_ipaddress {',
      '  ~SEQx(X, 0x90, 0x10, 0xa0) fe80::20:${X}:1',
      ' }',
      '}',
      'virtual_server 10.0.0.2 80 {',
      '  ~LST({P, W}, {81,3},{82,4}) ~LST(H, 7, 8) real_server 10.0.${H}.1 ${P} { weight $W }',
      '}',
    ].join('\n'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config.virtualServers[0]?.realServers.map((s) => s.address), ['10.0.1.1', '10.0.1.3', '10.0.1.5']);
    assert.deepEqual(r.config.vrrpInstances[0]?.virtualIpAddresses.map((v) => v.address), ['fe80::20:90:1', 'fe80::20:a0:1']);
    // 10.0.0.2:80 is not persistent and DR is not used, so ports may differ (NAT default).
    assert.deepEqual(r.config.virtualServers[1]?.realServers.map((s) => `${s.address}:${s.port}/${s.weight}`),
      ['10.0.7.1:81/3', '10.0.8.1:81/3', '10.0.7.1:82/4', '10.0.8.1:82/4']);
  });

  it('provides ${_HASH}, ${_BANG}, ${_PWD}, ${_ENV X}, ${_INSTANCE}', () => {
    const r = parseText('global_defs { router_id a${_HASH}b${_BANG}${_ENV WHO}-${_INSTANCE} }\nvirtual_server 10.0.0.1 80 { quorum_up ${_PWD}/x.sh }',
      { env: { WHO: 'me' }, configId: 'node1' });
    assert.deepEqual(errorsOf(r), []);
    assert.equal(r.config.global.routerId, 'a#b!me-node1');
    assert.equal(r.config.virtualServers[0]?.quorumUp?.argv[0], `${path.resolve('.')}/x.sh`);
  });

  it('stops runaway self-referencing parameters with a located error', () => {
    const r = parseText('$A=x$A\nglobal_defs { router_id $A }\n'.replace('x$A', 'x ${A}'));
    assert.ok(errorsOf(r).some((d) => d.code === 'E_LIMIT' && d.loc?.line === 2));
  });

  it('rejects binary files at the first NUL byte, and files over the size limit', async () => {
    await withTempDir((dir) => {
      const bin = Buffer.concat([Buffer.from('global_defs {\n  router_id x'), Buffer.from([0, 1, 2, 0xff]), Buffer.from('\n}\n')]);
      writeTree(dir, { 'bin.conf': bin, 'big.conf': 'x'.repeat(2048) });
      const b = loadKeepalivedConfig(path.join(dir, 'bin.conf'), { configId: 't', env: {} });
      assert.deepEqual(errorsOf(b).map((d) => [d.code, d.loc?.line, d.loc?.col]), [['E_BINARY', 2, 14]]);
      const g = loadKeepalivedConfig(path.join(dir, 'big.conf'), { configId: 't', env: {}, maxFileBytes: 1024 });
      assert.deepEqual(errorsOf(g).map((d) => [d.code, d.loc?.line, d.loc?.col]), [['E_TOO_LARGE', 1, 1]]);
      assert.ok(fs.existsSync(path.join(dir, 'big.conf')));
    });
  });

  it('keeps going past invalid UTF-8 in comments (legacy encodings), with a warning', async () => {
    await withTempDir((dir) => {
      writeTree(dir, { 'gbk.conf': Buffer.concat([Buffer.from('global_defs { # '), Buffer.from([0xc8, 0xab, 0xbe, 0xd6]), Buffer.from('\n router_id r1\n}\n')]) });
      const r = loadKeepalivedConfig(path.join(dir, 'gbk.conf'), { configId: 't', env: {} });
      assert.deepEqual(errorsOf(r), []);
      assert.equal(r.config.global.routerId, 'r1');
      assert.equal(warningsOf(r)[0]?.code, 'W_ADJUSTED');
    });
  });
});
