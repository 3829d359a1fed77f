/**
 * A hostile tenant's tool: a Python script, run as a container's own process (python3 of the
 * `host` template, the node's), that crafts Ethernet frames on the container's eth0 through an
 * AF_PACKET socket (which needs CAP_NET_RAW). Every run is bounded: a few frames, a sniff of at
 * most a few seconds, then it prints `done` and sleeps (the test removes the container).
 *
 *   probe                 prints `packet-socket ok` or `packet-socket <errno name>`
 *   loopback GWMAC GWIP UDP_LO TCP_LO UDP_CTL TCP_CTL
 *                         UDP and TCP SYN to 127.0.0.1 (UDP_LO, TCP_LO) through the gateway's MAC,
 *                         then the same to the gateway's address (UDP_CTL, TCP_CTL, the control);
 *                         prints `synack <ip>:<port>` for each SYN-ACK seen within 3 s
 *   spoof GWMAC GWIP VICTIM_IP VICTIM_MAC UDP_CTL
 *                         ARP replies and gratuitous ARP claiming the victim's address with the
 *                         attacker's MAC (one of them sent from the victim's MAC), UDP with the
 *                         victim's address as source, an IPv6 neighbour advertisement for the
 *                         victim's link-local address, and UDP with the attacker's own
 *                         addresses in VLAN-tagged frames (VID 0 priority-tagged, VID 5:
 *                         `vlan0`, `vlan5`); spread over 2.5 s (the kernel's ARP
 *                         locktime is 1 s); prints `sent <n>` (frames that must all be dropped),
 *                         then one legitimate UDP datagram `legit` to UDP_CTL (the control)
 */
export const RAW_FRAMES_PY = String.raw`
import socket, struct, sys, fcntl, time, errno
mode = sys.argv[1]
def done():
    print('done', flush=True)
    time.sleep(1000000)
if mode == 'probe':
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
        print('packet-socket ok', flush=True)
    except OSError as e:
        print('packet-socket ' + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    done()
def mac(m): return bytes.fromhex(m.replace(':', ''))
def aton(a): return socket.inet_aton(a)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s >> 16) + (s & 0xffff)
    return ~s & 0xffff
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
my_ip = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), 0x8915, struct.pack('256s', b'eth0'))[20:24])
my_mac = mac(open('/sys/class/net/eth0/address').read().strip())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(('eth0', 0))
def eth(dst, typ, payload, src=None): return dst + (src or my_mac) + struct.pack('!H', typ) + payload
def ipv4(src, dst, proto, payload):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, aton(src), aton(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
def udp(src, dst, sport, dport, data):
    u = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    c = csum(aton(src) + aton(dst) + struct.pack('!BBH', 0, 17, len(u)) + u) or 0xffff
    return ipv4(src, dst, 17, u[:6] + struct.pack('!H', c) + u[8:])
def syn(src, dst, sport, dport):
    t = struct.pack('!HHIIBBHHH', sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    c = csum(aton(src) + aton(dst) + struct.pack('!BBH', 0, 6, len(t)) + t)
    return ipv4(src, dst, 6, t[:16] + struct.pack('!H', c) + t[18:])
def arp(op, sha, spa, tha, tpa):
    return struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, op, sha, aton(spa), tha, aton(tpa))
if mode == 'loopback':
    gw_mac, gw_ip = mac(sys.argv[2]), sys.argv[3]
    udp_lo, tcp_lo, udp_ctl, tcp_ctl = (int(x) for x in sys.argv[4:8])
    for i in range(3):
        s.send(eth(gw_mac, 0x0800, udp(my_ip, '127.0.0.1', 40000 + i, udp_lo, b'loopback')))
        s.send(eth(gw_mac, 0x0800, syn(my_ip, '127.0.0.1', 41000 + i, tcp_lo)))
    for i in range(3):
        s.send(eth(gw_mac, 0x0800, udp(my_ip, gw_ip, 42000 + i, udp_ctl, b'control')))
        s.send(eth(gw_mac, 0x0800, syn(my_ip, gw_ip, 43000 + i, tcp_ctl)))
    s.settimeout(0.2)
    seen = set()
    end = time.time() + 3
    while time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if len(f) < 54 or f[12:14] != b'\x08\x00' or f[23] != 6: continue
        ihl = (f[14] & 15) * 4
        sport, dport = struct.unpack('!HH', f[14 + ihl:18 + ihl])
        flags = f[14 + ihl + 13]
        if flags & 0x12 == 0x12 and 41000 <= dport < 44000:
            seen.add('synack %s:%d' % (socket.inet_ntoa(f[26:30]), sport))
    for x in sorted(seen): print(x, flush=True)
    done()
if mode == 'spoof':
    gw_mac, gw_ip, victim_ip, victim_mac, udp_ctl = mac(sys.argv[2]), sys.argv[3], sys.argv[4], mac(sys.argv[5]), int(sys.argv[6])
    bcast = b'\xff' * 6
    # The victim's IPv6 link-local address (EUI-64 of its MAC) and an unsolicited, overriding NA.
    eui = bytes([victim_mac[0] ^ 2]) + victim_mac[1:3] + b'\xff\xfe' + victim_mac[3:]
    ll = b'\xfe\x80' + b'\0' * 6 + eui
    allnodes = bytes.fromhex('ff020000000000000000000000000001')
    na = struct.pack('!BBHI16s', 136, 0, 0, 0x20000000, ll) + b'\x02\x01' + my_mac
    c = csum(ll + allnodes + struct.pack('!I', len(na)) + b'\0\0\0\x3a' + na)
    na = na[:2] + struct.pack('!H', c) + na[4:]
    ip6 = struct.pack('!IHBB16s16s', 0x60000000, len(na), 58, 255, ll, allnodes) + na
    sent = 0
    for i in range(6):
        frames = [
            eth(gw_mac, 0x0806, arp(2, my_mac, victim_ip, gw_mac, gw_ip), src=victim_mac),
            eth(bcast, 0x0806, arp(1, my_mac, victim_ip, b'\0' * 6, victim_ip)),
            eth(gw_mac, 0x0806, arp(2, my_mac, victim_ip, gw_mac, gw_ip)),
            eth(gw_mac, 0x0800, udp(victim_ip, gw_ip, 44000, udp_ctl, b'spoofed')),
            eth(b'\x33\x33\0\0\0\x01', 0x86dd, ip6),
            eth(gw_mac, 0x8100, struct.pack('!HH', 0x6000, 0x0800) + udp(my_ip, gw_ip, 44001, udp_ctl, b'vlan0')),
            eth(gw_mac, 0x8100, struct.pack('!HH', 0x0005, 0x0800) + udp(my_ip, gw_ip, 44002, udp_ctl, b'vlan5')),
        ]
        for f in frames: s.send(f)
        sent += len(frames)
        time.sleep(0.5)
    print('sent %d' % sent, flush=True)
    s.send(eth(gw_mac, 0x0800, udp(my_ip, gw_ip, 45000, udp_ctl, b'legit')))
    done()
`;

/** The command of a container that runs the script in `mode` with `args`. */
export function rawFramesCommand(mode: 'probe' | 'loopback' | 'spoof', args: (string | number)[] = []): string[] {
  return ['/usr/bin/python3', '-c', RAW_FRAMES_PY, mode, ...args.map(String)];
}
