// The client address behind proxies: which forwarding headers are believed, from whom.
#include "services/fanout/trusted_proxies.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using jetstream::fanout::select_client_ip;
using jetstream::fanout::TrustedProxies;

TrustedProxies parse(const char* spec) {
  std::string error;
  const auto trusted = TrustedProxies::parse(spec, &error);
  EXPECT_TRUE(trusted) << spec << ": " << error;
  return trusted.value_or(TrustedProxies{});
}

TEST(TrustedProxies, StarTrustsEveryoneAsV1Did) {
  const TrustedProxies star = parse("*");
  EXPECT_TRUE(star.trusts_everyone());
  EXPECT_TRUE(star.trusts("203.0.113.9"));
  EXPECT_TRUE(star.trusts("not an address"));
  EXPECT_TRUE(TrustedProxies{}.trusts_everyone());  // the default
}

TEST(TrustedProxies, EmptyTrustsNoOne) {
  const TrustedProxies none = parse("");
  EXPECT_FALSE(none.trusts_everyone());
  EXPECT_FALSE(none.trusts("127.0.0.1"));
  EXPECT_FALSE(none.trusts("::1"));
}

TEST(TrustedProxies, BlocksMatchByPrefixInTheirFamily) {
  const TrustedProxies trusted = parse(" 10.0.0.0/8, 172.16.0.0/12,192.168.1.7 ,fc00::/7,::1/128");
  EXPECT_TRUE(trusted.trusts("10.1.2.3"));
  EXPECT_TRUE(trusted.trusts("172.31.255.255"));
  EXPECT_FALSE(trusted.trusts("172.32.0.1"));  // just outside /12
  EXPECT_TRUE(trusted.trusts("192.168.1.7"));  // a single address is a /32
  EXPECT_FALSE(trusted.trusts("192.168.1.8"));
  EXPECT_TRUE(trusted.trusts("fd12:3456::1"));
  EXPECT_TRUE(trusted.trusts("[::1]"));
  EXPECT_FALSE(trusted.trusts("2001:db8::1"));
  EXPECT_TRUE(trusted.trusts("::ffff:10.9.8.7")) << "IPv4-mapped IPv6 is IPv4";
  EXPECT_FALSE(trusted.trusts("::ffff:11.9.8.7"));
  EXPECT_FALSE(trusted.trusts("::a01:203")) << "an IPv6 address never matches an IPv4 block";
  EXPECT_FALSE(trusted.trusts("10.1.2.3.4"));
  EXPECT_FALSE(trusted.trusts(""));
  EXPECT_TRUE(parse("0.0.0.0/0").trusts("198.51.100.1"));
  EXPECT_FALSE(parse("0.0.0.0/0").trusts("2001:db8::1"));
  EXPECT_TRUE(parse("10.0.0.0/9").trusts("10.127.0.1"));
  EXPECT_FALSE(parse("10.0.0.0/9").trusts("10.128.0.1"));
}

TEST(TrustedProxies, BadSpecsAreRefusedWithTheReason) {
  for (const char* spec : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129", "example.org",
                           "10.0.0.1,garbage", "*,10.0.0.0/8", "1.2.3.4/-1"}) {
    std::string error;
    EXPECT_FALSE(TrustedProxies::parse(spec, &error)) << spec;
    EXPECT_FALSE(error.empty()) << spec;
  }
}

TEST(ClientIp, EveryoneTrustedTakesTheFirstForwardedEntryLikeV1) {
  const TrustedProxies star;
  EXPECT_EQ(select_client_ip("10.0.0.5", "203.0.113.9, 10.0.0.5", "", star), "203.0.113.9");
  EXPECT_EQ(select_client_ip("10.0.0.5", "", "198.51.100.2", star), "198.51.100.2");
  EXPECT_EQ(select_client_ip("10.0.0.5", "", "", star), "10.0.0.5");
  EXPECT_EQ(select_client_ip("10.0.0.5", "[2001:db8::7]", "", star), "2001:db8::7");
}

TEST(ClientIp, AnUntrustedPeerIsTheClientWhateverItsHeadersSay) {
  const TrustedProxies proxies = parse("10.0.0.0/8");
  EXPECT_EQ(select_client_ip("203.0.113.9", "1.1.1.1", "2.2.2.2", proxies), "203.0.113.9");
  EXPECT_EQ(select_client_ip("203.0.113.9", "", "", parse("")), "203.0.113.9");
}

TEST(ClientIp, ATrustedProxyChainIsReadFromTheRight) {
  const TrustedProxies proxies = parse("10.0.0.0/8");
  // The client forged the first entry; the proxy appended the address it really saw.
  EXPECT_EQ(select_client_ip("10.0.0.5", "6.6.6.6, 203.0.113.9", "", proxies), "203.0.113.9");
  // Two proxies of ours in a row are skipped.
  EXPECT_EQ(select_client_ip("10.0.0.5", "6.6.6.6,203.0.113.9, 10.0.0.7 ,10.0.0.6", "", proxies),
            "203.0.113.9");
  // Only our own hops: the leftmost one.
  EXPECT_EQ(select_client_ip("10.0.0.5", " ,10.0.0.8,10.0.0.7,", "", proxies), "10.0.0.8");
  // No X-Forwarded-For: X-Real-IP from a trusted peer.
  EXPECT_EQ(select_client_ip("10.0.0.5", "", "198.51.100.2", proxies), "198.51.100.2");
}

TEST(ClientIp, TheResultIsBoundedForLogsAndMapKeys) {
  const std::string huge(1000, 'a');
  EXPECT_EQ(select_client_ip("10.0.0.5", huge, "", TrustedProxies{}).size(), 64u);
}

}  // namespace
